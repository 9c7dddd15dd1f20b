/* agent/ag_state.c - the agent's durable state: state.json, the journal, instances */
/* SPDX-License-Identifier: Apache-2.0 */
#include "agent/ag_internal.h"

/* ---- files --------------------------------------------------------------------------- */

struct ag_instance *ag_instance_get(struct ag_agent *ag, const char *id)
{
    void *v = NULL;
    struct ag_instance *in;

    if (lh_table_lookup_ex(ag->instances, id, &v)) {
        return v;
    }
    in = gv_calloc(1, sizeof(*in));
    snprintf(in->id, sizeof(in->id), "%s", id);
    if (lh_table_insert(ag->instances, in->id, in) != 0) {
        abort(); /* json-c allocation failure: same policy as gv_malloc */
    }
    return in;
}

/* Keeps the furthest audit chain end the gateways reported. */
void ag_note_audit_head(struct ag_agent *ag, const struct gv_record *rec)
{
    if (rec->audit_head_seq > ag->audit_head_seq) {
        ag->audit_head_seq = rec->audit_head_seq;
        memcpy(ag->audit_head_hash, rec->audit_head_hash, sizeof(ag->audit_head_hash));
    }
}

void ag_instance_free_entry(struct lh_entry *e)
{
    gv_free(lh_entry_v(e));
}

/* A hello frame from the journal (recovery) or the wire: the instance it names, created on
 * first sight, into *inst (may be NULL). False when the frame does not decode. */
bool ag_apply_hello(struct ag_agent *ag, const uint8_t *p, size_t n, struct ag_instance **inst)
{
    struct gv_hello h;
    struct ag_instance *in;

    if (gv_hello_decode(p, n, &h) != GV_OK || !h.instance_id[0]) {
        return false;
    }
    in = ag_instance_get(ag, h.instance_id);
    in->hello = h;
    if (inst) {
        *inst = in;
    }
    return true;
}

/* path's whole content into data. No such file is no error: for the journal and the state
 * file it is a first start, which *present false tells the caller. */
static gv_rc read_if_present(const char *path, struct gv_buf *data, bool *present)
{
    gv_rc rc = gv_file_read_all(path, data);

    *present = rc != GV_ENOTFOUND;
    return rc == GV_ENOTFOUND ? GV_OK : rc;
}

/* Recovery: the journal holds hello and event frames written after the state
 * file; the seq marks skip what the state file already counted. A torn tail
 * (the agent died mid-write, so it was never acknowledged) is cut. */
gv_rc ag_journal_replay(struct ag_agent *ag)
{
    struct gv_buf data;
    struct gv_record *rec = gv_malloc(sizeof(*rec));
    size_t off = 0;
    uint64_t applied = 0;
    bool present;
    gv_rc rc;

    gv_buf_init(&data, 0);
    rc = read_if_present(ag->journal_path, &data, &present);
    if (rc || !present) {
        goto out;
    }
    while (off < data.len) {
        unsigned type;
        const uint8_t *payload;
        size_t plen, used;
        struct gv_event_meta meta;

        if (gv_frame_parse(data.data + off, data.len - off, &type, &payload, &plen, &used)) {
            break;
        }
        if (type == GV_FRAME_HELLO) {
            if (!ag_apply_hello(ag, payload, plen, NULL)) {
                break;
            }
        }
        else if (type == GV_FRAME_EVENT) {
            struct ag_instance *in;
            if (gv_event_decode(payload, plen, rec, &meta) != GV_OK) {
                break;
            }
            in = ag_instance_get(ag, meta.instance_id);
            if (meta.seq > in->hwm) {
                /* The journal holds counted events only: no id check here (the
                 * ids file may already hold these ids), just remember them. */
                if (rec->request_id[0]) {
                    uint8_t key[AG_IDS_KEY];
                    ag_ids_key(rec->request_id, key);
                    ag_ids_add(ag->ids, key);
                }
                ag_runs_apply(ag->runs, rec, &in->hello, gv_wall_us());
                ag_note_audit_head(ag, rec);
                in->hwm = meta.seq;
                atomic_fetch_add(&ag->events, 1);
                applied++;
            }
            gv_record_release(rec);
        }
        off += used;
    }
    if (off < data.len) {
        gv_log(GV_LOG_WARN, MOD, "journal tail cut", "bytes=%zu", data.len - off);
        if (truncate(ag->journal_path, (off_t)off) != 0) {
            rc = GV_EIO;
            goto out;
        }
    }
    ag->journal_bytes = off;
    if (applied) {
        gv_log(GV_LOG_INFO, MOD, "journal replayed", "events=%llu", (unsigned long long)applied);
    }
out:
    gv_buf_free(&data);
    gv_free(rec);
    return rc;
}

gv_rc ag_state_load(struct ag_agent *ag)
{
    struct gv_buf data;
    struct json_object *root = NULL, *v;
    size_t i;
    bool present;
    gv_rc rc;

    gv_buf_init(&data, 0);
    rc = read_if_present(ag->state_path, &data, &present);
    if (rc || !present) {
        goto out;
    }
    root = json_tokener_parse(data.data);
    if (!root || !json_object_object_get_ex(root, "runs", &v)) {
        rc = GV_EPROTO;
        goto out;
    }
    rc = ag_runs_from_json(ag->runs, v);
    if (rc) {
        goto out;
    }
    if (json_object_object_get_ex(root, "instances", &v) &&
        json_object_is_type(v, json_type_array)) {
        for (i = 0; i < json_object_array_length(v); i++) {
            struct json_object *o = json_object_array_get_idx(v, i), *f;
            struct ag_instance *in;
            if (!json_object_object_get_ex(o, "id", &f)) {
                continue;
            }
            in = ag_instance_get(ag, json_object_get_string(f));
            if (json_object_object_get_ex(o, "hwm", &f)) {
                in->hwm = json_object_get_uint64(f);
            }
            snprintf(in->hello.instance_id, sizeof(in->hello.instance_id), "%s", in->id);
            if (json_object_object_get_ex(o, "pack_name", &f)) {
                snprintf(in->hello.pack_name, sizeof(in->hello.pack_name), "%s",
                         json_object_get_string(f));
            }
            if (json_object_object_get_ex(o, "pack_version", &f)) {
                snprintf(in->hello.pack_version, sizeof(in->hello.pack_version), "%s",
                         json_object_get_string(f));
            }
            if (json_object_object_get_ex(o, "chain", &f)) {
                snprintf(in->hello.chain, sizeof(in->hello.chain), "%s", json_object_get_string(f));
            }
        }
    }
    if (json_object_object_get_ex(root, "events", &v)) {
        atomic_store(&ag->events, json_object_get_uint64(v));
    }
    if (json_object_object_get_ex(root, "flush_seq", &v)) {
        ag->flush_seq = json_object_get_uint64(v);
    }
    if (json_object_object_get_ex(root, "audit_head_seq", &v)) {
        ag->audit_head_seq = json_object_get_uint64(v);
        ag->audit_head_logged = ag->audit_head_seq;
    }
    if (json_object_object_get_ex(root, "audit_head_hash", &v)) {
        snprintf(ag->audit_head_hash, sizeof(ag->audit_head_hash), "%s", json_object_get_string(v));
    }
out:
    json_object_put(root);
    gv_buf_free(&data);
    return rc;
}

/* Checkpoint: state.json is replaced atomically, then the journal it covers is
 * emptied. A crash between the two replays a journal whose events the seq marks
 * in the new state already cover, so nothing counts twice. */
gv_rc ag_state_save(struct ag_agent *ag)
{
    struct json_object *root = json_object_new_object();
    struct json_object *insts = json_object_new_array();
    struct lh_entry *e;
    char tmp[4300];
    const char *text;
    int fd = -1;
    gv_rc rc = GV_OK;

    lh_foreach(ag->instances, e)
    {
        const struct ag_instance *in = lh_entry_v(e);
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(in->id));
        json_object_object_add(o, "hwm", json_object_new_uint64(in->hwm));
        json_object_object_add(o, "pack_name", json_object_new_string(in->hello.pack_name));
        json_object_object_add(o, "pack_version", json_object_new_string(in->hello.pack_version));
        json_object_object_add(o, "chain", json_object_new_string(in->hello.chain));
        json_object_array_add(insts, o);
    }
    json_object_object_add(root, "version", json_object_new_int(STATE_VERSION));
    json_object_object_add(root, "events", json_object_new_uint64(atomic_load(&ag->events)));
    json_object_object_add(root, "flush_seq", json_object_new_uint64(ag->flush_seq));
    if (ag->audit_head_seq) {
        json_object_object_add(root, "audit_head_seq", json_object_new_uint64(ag->audit_head_seq));
        json_object_object_add(root, "audit_head_hash",
                               json_object_new_string(ag->audit_head_hash));
    }
    json_object_object_add(root, "instances", insts);
    json_object_object_add(root, "runs", ag_runs_to_json(ag->runs));
    text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
    snprintf(tmp, sizeof(tmp), "%s.tmp", ag->state_path);
    /* The ids of what the journal holds go to the ids file before the journal
     * is emptied; replay re-adds them if this checkpoint does not finish. */
    if (ag_ids_save(ag->ids, ag->ids_path, ag->opts.fsync) != GV_OK) {
        rc = GV_EIO;
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || gv_file_write_all(fd, text, strlen(text)) != GV_OK ||
        (ag->opts.fsync && fdatasync(fd) != 0)) {
        rc = GV_EIO;
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, ag->state_path) != 0) {
        rc = GV_EIO;
        goto out;
    }
    if (ftruncate(ag->journal_fd, 0) != 0) {
        rc = GV_EIO;
        goto out;
    }
    ag->journal_bytes = 0;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (rc) {
        int err = errno;
        /* A half-written temp file only takes space a full disk needs back. */
        unlink(tmp);
        gv_log(GV_LOG_ERROR, MOD, "checkpoint failed", "path=%s errno=%d", ag->state_path, err);
    }
    json_object_put(root);
    return rc;
}

/* ---- journal ------------------------------------------------------------------------- */

/* The agent cannot go on: stop, and make ag_agent_run report it. */
void ag_fail(struct ag_agent *ag)
{
    ag->failed = true;
    ag_agent_stop(ag);
}

/* A full disk or quota passes once space is freed; other errors do not. */
bool ag_journal_transient(int err)
{
    return err == ENOSPC || err == EDQUOT;
}

/* Appends jbuf to the journal: 0, or the errno of the failure. A partial
 * append is cut off again, so the journal stays whole frames and a later
 * append lands where this one began. */
int ag_journal_append(struct ag_agent *ag)
{
    int err;

    errno = 0;
    if (gv_file_write_all(ag->journal_fd, ag->jbuf.data, ag->jbuf.len) == GV_OK) {
        ag->journal_bytes += ag->jbuf.len;
        ag->journal_dirty = true;
        return 0;
    }
    err = errno ? errno : ENOSPC; /* write(2) returned 0: no room */
    if (ftruncate(ag->journal_fd, (off_t)ag->journal_bytes) != 0) {
        gv_log(GV_LOG_ERROR, MOD, "journal cannot be cut back to its last frame", "errno=%d",
               errno);
        return EIO; /* a torn frame in the middle: nothing after it would replay */
    }
    return err;
}
