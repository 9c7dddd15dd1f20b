/* cli/cmd_events_reemit.c - kt events reemit: governance events again, from audit records */
/* SPDX-License-Identifier: Apache-2.0 */
#include "cli/cli.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/rand.h>

#include "agent/ag_agent.h"
#include "cli/cli_args.h"
#include "core/gv_buf.h"
#include "core/gv_event.h"
#include "core/gv_hash.h"
#include "core/gv_log.h"
#include "core/gv_mem.h"
#include "core/gv_paths.h"
#include "core/gv_pii.h"
#include "core/gv_record.h"
#include "core/gv_time.h"
#include "gateway/policies/audit/audit_store.h"

/* Why this is safe to run any number of times: the agent remembers the
 * request id of every event it counted and acknowledges, without counting, an
 * event whose request id it has seen; so re-emitting a record the agent has
 * counts nothing, and one it lost counts once. */

#define REEMIT_IDS_MAX 1024
#define ACK_TIMEOUT_MS 60000

struct reemit {
    const char *ids[REEMIT_IDS_MAX];
    size_t nids;
    const char *run;
    bool all;
    int fd;
    struct gv_buf frames; /* encoded, not yet sent */
    char instance[GV_INSTANCE_ID_LEN + 1];
    uint64_t seq;   /* last seq sent */
    uint64_t acked; /* last seq the agent acknowledged */
    struct gv_buf in;
    unsigned long long matched, bad;
};

static const char usage[] =
    "usage: kt events reemit (--request-id ID ... | --run ID | --all) [--state-dir DIR]\n"
    "                        [--audit-dir DIR] [--agent-socket PATH]\n"
    "Sends the governance events of audit records to kt agent again. The agent counts\n"
    "only requests it has not counted, so running it twice changes nothing.\n";

static uint64_t u64_of(struct json_object *o, const char *k)
{
    struct json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_uint64(v) : 0;
}

static double dbl_of(struct json_object *o, const char *k)
{
    struct json_object *v;
    return json_object_object_get_ex(o, k, &v) ? json_object_get_double(v) : 0.0;
}

static void pii_of(struct json_object *o, uint32_t *counts)
{
    struct json_object *m;

    if (!json_object_object_get_ex(o, "pii", &m) || !json_object_is_type(m, json_type_object)) {
        return;
    }
    json_object_object_foreach(m, k, v)
    {
        int t = gv_pii_from_name(k);
        if (t >= 0) {
            counts[t] = (uint32_t)json_object_get_uint64(v);
        }
    }
}

/* The record's fields as the gateway's event had them; what the audit log
 * does not keep (trace ids, telemetry content) stays empty. */
static void reemit_record(struct json_object *o, struct gv_record *rec)
{
    struct json_object *pols;
    int d;
    size_t i;

    memset(rec, 0, sizeof(*rec));
    rec->start_wall_us = u64_of(o, "ts_us");
    gv_str_copy(rec->request_id, sizeof(rec->request_id), gw_audit_member_str(o, "request_id"));
    gv_str_copy(rec->run_id, sizeof(rec->run_id), gw_audit_member_str(o, "run_id"));
    gv_str_copy(rec->project, sizeof(rec->project), gw_audit_member_str(o, "project"));
    gv_str_copy(rec->entity, sizeof(rec->entity), gw_audit_member_str(o, "entity"));
    gv_str_copy(rec->run_group, sizeof(rec->run_group), gw_audit_member_str(o, "run_group"));
    gv_str_copy(rec->principal, sizeof(rec->principal), gw_audit_member_str(o, "principal"));
    gv_str_copy(rec->team, sizeof(rec->team), gw_audit_member_str(o, "team"));
    gv_str_copy(rec->model, sizeof(rec->model), gw_audit_member_str(o, "model"));
    gv_str_copy(rec->target, sizeof(rec->target), gw_audit_member_str(o, "target"));
    d = gv_decision_parse(gw_audit_member_str(o, "decision"));
    rec->decision = d < 0 ? GV_DECISION_ERROR : (enum gv_decision)d;
    rec->http_status = (int)u64_of(o, "status");
    gv_str_copy(rec->error_code, sizeof(rec->error_code), gw_audit_member_str(o, "error_code"));
    if (json_object_object_get_ex(o, "policies", &pols) &&
        json_object_is_type(pols, json_type_array)) {
        for (i = 0; i < json_object_array_length(pols) && i < GV_RECORD_MAX_POLICIES; i++) {
            struct json_object *p = json_object_array_get_idx(pols, i);
            struct gv_policy_outcome *po = &rec->policies[i];
            const char *action = gw_audit_member_str(p, "action");
            int a;

            gv_str_copy(po->name, sizeof(po->name), gw_audit_member_str(p, "name"));
            po->action = GV_OUTCOME_ERROR;
            for (a = 0; a <= GV_OUTCOME_ERROR; a++) {
                if (strcmp(action, gv_outcome_action_str((enum gv_outcome_action)a)) == 0) {
                    po->action = (enum gv_outcome_action)a;
                }
            }
            po->score = dbl_of(p, "score");
            pii_of(p, po->pii_counts);
            rec->npolicies++;
        }
    }
    rec->latency_total_us = (uint64_t)(dbl_of(o, "latency_ms") * 1000.0 + 0.5);
    rec->latency_upstream_us = (uint64_t)(dbl_of(o, "upstream_ms") * 1000.0 + 0.5);
    rec->latency_gateway_us = (uint64_t)(dbl_of(o, "gateway_ms") * 1000.0 + 0.5);
    rec->tokens_prompt = u64_of(o, "tokens_prompt");
    rec->tokens_completion = u64_of(o, "tokens_completion");
    rec->cost_usd = dbl_of(o, "cost_usd");
    {
        struct json_object *v;
        rec->streamed = json_object_object_get_ex(o, "streamed", &v) && json_object_get_boolean(v);
    }
}

static bool wanted(const struct reemit *r, const struct gv_record *rec)
{
    size_t i;

    if (r->all) {
        return true;
    }
    if (r->run && strcmp(r->run, rec->run_id) == 0) {
        return true;
    }
    for (i = 0; i < r->nids; i++) {
        if (strcmp(r->ids[i], rec->request_id) == 0) {
            return true;
        }
    }
    return false;
}

/* Reads acknowledgements; GV_EIO when the agent went away. */
static gv_rc read_acks(struct reemit *r, int timeout_ms)
{
    struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
    char tmp[4096];
    size_t off = 0;
    ssize_t n;

    if (poll(&pfd, 1, timeout_ms) <= 0) {
        return GV_OK;
    }
    n = recv(r->fd, tmp, sizeof(tmp), 0);
    if (n <= 0) {
        return n < 0 && errno == EINTR ? GV_OK : GV_EIO;
    }
    if (gv_buf_append(&r->in, tmp, (size_t)n) != GV_OK) {
        return GV_EIO;
    }
    for (;;) {
        unsigned type;
        const uint8_t *p;
        size_t plen, used;
        if (gv_frame_parse(r->in.data + off, r->in.len - off, &type, &p, &plen, &used) != GV_OK) {
            break;
        }
        if (type == GV_FRAME_ACK && plen >= 8 && gv_get_u64le(p) > r->acked) {
            r->acked = gv_get_u64le(p);
        }
        off += used;
    }
    gv_buf_consume(&r->in, off);
    return GV_OK;
}

/* Sends the encoded frames, reading acknowledgements meanwhile. */
static gv_rc send_frames(struct reemit *r)
{
    size_t off = 0;

    while (off < r->frames.len) {
        ssize_t w = send(r->fd, r->frames.data + off, r->frames.len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return GV_EIO;
        }
        off += (size_t)w;
        if (read_acks(r, 0) != GV_OK) {
            return GV_EIO;
        }
    }
    gv_buf_reset(&r->frames);
    return GV_OK;
}

static gv_rc emit_record(struct reemit *r, const struct gv_record *rec)
{
    size_t mark = r->frames.len;
    gv_rc rc = gv_buf_append(&r->frames, "\0\0\0\0\2", GV_FRAME_HDR);

    rc = rc ? rc : gv_event_encode(rec, r->instance, r->seq + 1, &r->frames);
    if (rc) {
        gv_buf_truncate(&r->frames, mark);
        return rc;
    }
    gv_put_u32le((uint8_t *)r->frames.data + mark, (uint32_t)(r->frames.len - mark - GV_FRAME_HDR));
    r->seq++;
    return r->frames.len >= 256u * 1024u ? send_frames(r) : GV_OK;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every record line of every segment, oldest first. */
static gv_rc walk_audit(struct reemit *r, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0, i;
    gv_rc rc = GV_OK;
    struct gv_record *rec = gv_malloc(sizeof(*rec));

    if (!d) {
        fprintf(stderr, "kt events reemit: cannot open %s: %s\n", dir, strerror(errno));
        gv_free(rec);
        return GV_ENOTFOUND;
    }
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (strncmp(de->d_name, "seg-", 4) != 0 || len < 10 ||
            strcmp(de->d_name + len - 6, ".jsonl") != 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = gv_realloc(names, cap * sizeof(*names));
        }
        names[n++] = gv_strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_name);
    for (i = 0; i < n && rc == GV_OK; i++) {
        char path[4600];
        FILE *f;
        char *line = NULL;
        size_t lcap = 0;
        ssize_t len;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        f = fopen(path, "r");
        if (!f) {
            fprintf(stderr, "kt events reemit: cannot read %s: %s\n", path, strerror(errno));
            rc = GV_EIO;
            break;
        }
        while (rc == GV_OK && (len = getline(&line, &lcap, f)) > 0) {
            struct json_object *o = json_tokener_parse(line);
            struct json_object *v;
            if (!o || !json_object_object_get_ex(o, "seq", &v) ||
                !json_object_object_get_ex(o, "request_id", &v)) {
                /* The segment header, or a torn last line: not a record. */
                if (!o || !json_object_object_get_ex(o, "kt_audit", &v)) {
                    r->bad++;
                }
                json_object_put(o);
                continue;
            }
            reemit_record(o, rec);
            json_object_put(o);
            if (!rec->request_id[0] || !wanted(r, rec)) {
                continue;
            }
            r->matched++;
            rc = emit_record(r, rec);
        }
        free(line);
        fclose(f);
    }
    for (i = 0; i < n; i++) {
        gv_free(names[i]);
    }
    gv_free(names);
    gv_free(rec);
    return rc;
}

static uint64_t agent_events(const char *sock)
{
    struct gv_buf out;
    struct json_object *o = NULL, *a, *v;
    uint64_t n = 0;

    gv_buf_init(&out, 0);
    if (ag_status_query(sock, true, 5000, &out) == GV_OK) {
        o = json_tokener_parse(out.data);
        if (o && json_object_object_get_ex(o, "agent", &a) &&
            json_object_object_get_ex(a, "events", &v)) {
            n = json_object_get_uint64(v);
        }
    }
    json_object_put(o);
    gv_buf_free(&out);
    return n;
}

int cli_events_reemit(int argc, char **argv)
{
    struct reemit r;
    const char *state = NULL, *sock = NULL, *audit = NULL;
    struct cli_list ids = {NULL, 0, 0};
    /* One option a row. */
    /* clang-format off */
    const struct cli_opt opts[] = {
        {"--request-id", CLI_OPT_LIST, &ids, 0, 0},
        {"--run", CLI_OPT_STR, &r.run, 0, 0},
        {"--all", CLI_OPT_FLAG, &r.all, 0, 0},
        {"--state-dir", CLI_OPT_STR, &state, 0, 0},
        {"--audit-dir", CLI_OPT_STR, &audit, 0, 0},
        {"--agent-socket", CLI_OPT_STR, &sock, 0, 0},
        {NULL, CLI_OPT_FLAG, NULL, 0, 0},
    };
    /* clang-format on */
    const struct cli_spec spec = {"kt events reemit", usage, opts, NULL, 0, 0};
    struct cli_paths paths;
    char audit_buf[4200];
    unsigned char rnd[GV_INSTANCE_ID_LEN / 2];
    struct sockaddr_un sa;
    struct gv_hello h;
    struct gv_buf enc;
    uint64_t before, after, deadline;
    int code;
    gv_rc rc;

    memset(&r, 0, sizeof(r));
    r.fd = -1;
    ids.v = r.ids;
    ids.max = REEMIT_IDS_MAX;
    code = cli_args_parse(&spec, argc, argv, NULL);
    if (code != CLI_ARGS_RUN) {
        return code;
    }
    code = 1;
    r.nids = (size_t)ids.n;
    if (!r.all && !r.run && r.nids == 0) {
        return cli_usage_error(&spec, "say which records: --request-id, --run or --all");
    }
    if (cli_agent_paths(spec.cmd, &state, &sock, &paths) != CLI_ARGS_RUN) {
        return 2;
    }
    if (!audit) {
        snprintf(audit_buf, sizeof(audit_buf), "%s/audit", state);
        audit = audit_buf;
    }
    if (strlen(sock) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "kt events reemit: socket path too long\n");
        return 2;
    }
    gv_buf_init(&r.frames, 0);
    gv_buf_init(&r.in, 1024 * 1024);
    gv_buf_init(&enc, GV_FRAME_MAX);
    before = agent_events(sock);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, sock, strlen(sock) + 1);
    r.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r.fd < 0 || connect(r.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        fprintf(stderr, "kt events reemit: no agent answering at %s\n", sock);
        goto out;
    }
    /* A fresh instance: its seqs start at 1 and never meet a gateway's. */
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        fprintf(stderr, "kt events reemit: no randomness for an instance id\n");
        goto out;
    }
    gv_hex_encode(rnd, sizeof(rnd), r.instance);
    memset(&h, 0, sizeof(h));
    h.schema_version = GV_EVENT_SCHEMA_VERSION;
    memcpy(h.instance_id, r.instance, sizeof(h.instance_id));
    h.pid = (uint32_t)getpid();
    if (gv_hello_encode(&h, &enc) != GV_OK ||
        gv_frame_append(&r.frames, GV_FRAME_HELLO, enc.data, enc.len) != GV_OK) {
        goto out;
    }
    rc = walk_audit(&r, audit);
    if (rc == GV_OK) {
        rc = send_frames(&r);
    }
    if (rc) {
        fprintf(stderr, "kt events reemit: stopped: %s\n", gv_rc_str(rc));
        goto out;
    }
    deadline = gv_mono_us() + (uint64_t)ACK_TIMEOUT_MS * 1000u;
    while (r.acked < r.seq && gv_mono_us() < deadline) {
        if (read_acks(&r, 100) != GV_OK) {
            break;
        }
    }
    if (r.acked < r.seq) {
        fprintf(stderr,
                "kt events reemit: the agent acknowledged %llu of %llu events; run it again\n",
                (unsigned long long)r.acked, (unsigned long long)r.seq);
        goto out;
    }
    after = agent_events(sock);
    printf("reemitted %llu events from %s; the agent counted %llu new, %llu were already "
           "counted\n",
           r.matched, audit, (unsigned long long)(after - before),
           r.matched - (unsigned long long)(after - before));
    if (r.bad) {
        fprintf(stderr, "kt events reemit: %llu lines were not records (see kt events verify)\n",
                r.bad);
    }
    code = 0;
out:
    if (r.fd >= 0) {
        close(r.fd);
    }
    gv_buf_free(&r.frames);
    gv_buf_free(&r.in);
    gv_buf_free(&enc);
    return code;
}
