/* cli/cmd_events.c - kt events list|verify|tail over the audit segments */
/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE /* strptime, timegm */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_args.h"
#include "core/gv_buf.h"
#include "core/gv_cfg.h"
#include "core/gv_mem.h"
#include "core/gv_paths.h"
#include "core/gv_pii.h"
#include "core/gv_record.h"
#include "core/gv_time.h"
#include "gateway/policies/audit/audit_store.h"

#define LIMIT_MAX 1000000L

struct opts {
    char dir[4096];
    long limit;
    const char *run;
    int decision; /* -1: any */
    uint64_t since_us;
    bool json;
    bool wide;        /* list: no column caps */
    long max;         /* tail: stop after this many new records; 0 = never */
    bool have_expect; /* verify --expect-head */
    struct gw_audit_pos expect;
};

#define USAGE_LIST                                                                                 \
    "usage: kt events list [--limit N] [--run ID] [--decision D] [--since T] [--json] [--wide]\n"  \
    "                      [--state-dir DIR | --audit-dir DIR]\n"                                  \
    "  The newest N (default 20) audit records, oldest first; D is allowed|redacted|blocked|\n"    \
    "  error, T an RFC 3339 time or an age (15m, 2h, 7d). Columns fit the data up to a cap;\n"     \
    "  a cut value ends in an ellipsis, --wide lifts the caps, --json is always whole.\n"
#define USAGE_VERIFY                                                                               \
    "usage: kt events verify [--json] [--expect-head SEQ:HASH]\n"                                  \
    "                        [--state-dir DIR | --audit-dir DIR]\n"                                \
    "  Checks the audit log's hash chain from the first record to the head (head.json must\n"      \
    "  exist); with --expect-head, also that the chain passes through a head published\n"          \
    "  earlier (W&B summary, agent log). Exit 1 when it does not.\n"
#define USAGE_TAIL                                                                                 \
    "usage: kt events tail [--lines N] [--max N] [--run ID] [--decision D] [--since T] [--json]\n" \
    "                      [--state-dir DIR | --audit-dir DIR]\n"                                  \
    "  The last N (default 10) records, then new ones as they are written; --max N stops\n"        \
    "  after N new records.\n"

/* RFC 3339 ("2026-01-02T03:04:05Z", fraction and offset "Z" only) or an age. */
static bool parse_since(const char *s, uint64_t *out)
{
    struct tm tm;
    const char *end;
    long ms;

    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (end) {
        time_t t;
        if (*end == '.') {
            end++;
            while (*end >= '0' && *end <= '9') {
                end++;
            }
        }
        if (strcmp(end, "Z") != 0 && *end != '\0') {
            return false;
        }
        t = timegm(&tm);
        if (t < 0) {
            return false;
        }
        *out = (uint64_t)t * 1000000u;
        return true;
    }
    {
        /* Days are the natural unit for audit questions; the config parser stops at minutes. */
        char num[32];
        size_t n = strlen(s);
        long days;
        if (n >= 2 && n < sizeof(num) && s[n - 1] == 'd') {
            memcpy(num, s, n - 1);
            num[n - 1] = '\0';
            if (gv_cfg_parse_long(num, &days) && days >= 0 && days <= 36500) {
                uint64_t now = gv_wall_us();
                uint64_t ago = (uint64_t)days * 86400u * 1000000u;
                *out = ago > now ? 0 : now - ago;
                return true;
            }
        }
    }
    if (gv_cfg_parse_duration_ms(s, &ms) && ms >= 0) {
        uint64_t now = gv_wall_us();
        uint64_t ago = (uint64_t)ms * 1000u;
        *out = ago > now ? 0 : now - ago;
        return true;
    }
    return false;
}

/* SEQ:HASH as head.json holds them: a decimal seq and 64 hex digits. */
static bool parse_head(const char *s, struct gw_audit_pos *pos)
{
    char num[24];
    const char *colon = strchr(s, ':');
    long seq;
    size_t n, i;

    if (!colon || (size_t)(colon - s) >= sizeof(num) || strlen(colon + 1) != GW_AUDIT_HASH_HEX) {
        return false;
    }
    n = (size_t)(colon - s);
    memcpy(num, s, n);
    num[n] = '\0';
    if (!gv_cfg_parse_long(num, &seq) || seq < 0) {
        return false;
    }
    memset(pos, 0, sizeof(*pos));
    pos->seq = (uint64_t)seq;
    for (i = 0; i < GW_AUDIT_HASH_HEX; i++) {
        char c = colon[1 + i];
        if (c >= 'A' && c <= 'F') {
            c = (char)(c - 'A' + 'a');
        }
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
        pos->hash[i] = c;
    }
    pos->hash[GW_AUDIT_HASH_HEX] = '\0';
    return true;
}

static int parse_opts(const char *cmd, int argc, char **argv, struct opts *o)
{
    char state[4096];
    const char *state_dir = NULL, *audit_dir = NULL, *decision = NULL, *since = NULL;
    const char *expect = NULL;
    bool tail = strcmp(cmd, "tail") == 0, verify = strcmp(cmd, "verify") == 0;
    const char *name = tail ? "kt events tail" : verify ? "kt events verify" : "kt events list";
    const char *usage = tail ? USAGE_TAIL : verify ? USAGE_VERIFY : USAGE_LIST;
    const char *count_opt = verify ? "" : tail ? "--lines" : "--limit";
    /* Rows named "" are not this command's: verify reads every record (filters and counts
     * would only mislead it), only tail has --max, only verify --expect-head, only list
     * --wide. */
    const struct cli_opt opts[] = {
        {"--json", CLI_OPT_FLAG, &o->json, 0, 0},
        {"--state-dir", CLI_OPT_STR, &state_dir, 0, 0},
        {"--audit-dir", CLI_OPT_STR, &audit_dir, 0, 0},
        {count_opt, CLI_OPT_LONG, &o->limit, 0, LIMIT_MAX},
        {verify ? "" : "--run", CLI_OPT_STR, &o->run, 0, 0},
        {verify ? "" : "--decision", CLI_OPT_STR, &decision, 0, 0},
        {verify ? "" : "--since", CLI_OPT_STR, &since, 0, 0},
        {tail ? "--max" : "", CLI_OPT_LONG, &o->max, 0, LIMIT_MAX},
        {verify ? "--expect-head" : "", CLI_OPT_STR, &expect, 0, 0},
        {!tail && !verify ? "--wide" : "", CLI_OPT_FLAG, &o->wide, 0, 0},
        {NULL, CLI_OPT_FLAG, NULL, 0, 0},
    };
    const struct cli_spec spec = {.cmd = name, .usage = usage, .opts = opts};
    int n, code;

    memset(o, 0, sizeof(*o));
    o->limit = tail ? 10 : 20;
    o->decision = -1;
    code = cli_args_parse(&spec, argc, argv, NULL);
    if (code != CLI_ARGS_RUN) {
        return code;
    }
    if (decision && (o->decision = gv_decision_parse(decision)) < 0) {
        return cli_usage_error(&spec, "--decision must be allowed|redacted|blocked|error, got '%s'",
                               decision);
    }
    if (since && !parse_since(since, &o->since_us)) {
        return cli_usage_error(&spec,
                               "--since wants RFC 3339 (2026-01-02T03:04:05Z) or an age (15m, "
                               "2h, 7d), got '%s'",
                               since);
    }
    if (expect && !parse_head(expect, &o->expect)) {
        return cli_usage_error(&spec,
                               "--expect-head wants SEQ:HASH (a seq and 64 hex digits, as "
                               "head.json holds them), got '%s'",
                               expect);
    }
    o->have_expect = expect != NULL;
    if (state_dir && audit_dir) {
        return cli_usage_error(&spec, "--state-dir and --audit-dir exclude each other");
    }
    if (audit_dir) {
        n = snprintf(o->dir, sizeof(o->dir), "%s", audit_dir);
    }
    else {
        if (!state_dir) {
            if (gv_state_dir_default(state, sizeof(state)) != GV_OK) {
                return cli_usage_error(&spec, "no usable state dir; pass --state-dir");
            }
            state_dir = state;
        }
        n = snprintf(o->dir, sizeof(o->dir), "%s/audit", state_dir);
    }
    if (n < 0 || (size_t)n >= sizeof(o->dir)) {
        return cli_usage_error(&spec, "path too long");
    }
    return CLI_ARGS_RUN;
}

static int64_t int_field(struct json_object *o, const char *k)
{
    struct json_object *v;
    if (json_object_object_get_ex(o, k, &v)) {
        return json_object_get_int64(v);
    }
    return 0;
}

static bool matches(const struct opts *o, struct json_object *rec)
{
    if (o->run && strcmp(gw_audit_member_str(rec, "run_id"), o->run) != 0) {
        return false;
    }
    if (o->decision >= 0 && strcmp(gw_audit_member_str(rec, "decision"),
                                   gv_decision_str((enum gv_decision)o->decision)) != 0) {
        return false;
    }
    if (o->since_us && (uint64_t)int_field(rec, "ts_us") < o->since_us) {
        return false;
    }
    return true;
}

/* The table's columns. A column is as wide as its widest value up to its cap
 * (0: none); --wide lifts the caps. A value cut to fit ends in an ellipsis, so a
 * shortened run id never passes for a whole one; --json is never cut. */
enum col {
    C_TIME,
    C_DEC,
    C_STATUS,
    C_RUN,
    C_PRINCIPAL,
    C_MODEL,
    C_TOKENS,
    C_COST,
    C_POL,
    C_REQ,
    NCOLS
};

static const char *const col_name[NCOLS] = {"TIME",      "DECISION", "STATUS", "RUN",
                                            "PRINCIPAL", "MODEL",    "TOKENS", "COST_USD",
                                            "POLICIES",  "REQUEST"};
/* Caps in characters: RUN fits the usual W&B ids and most custom ones, POLICIES
 * a decision with every PII entity type counted. */
static const int col_cap[NCOLS] = {0, 0, 0, 64, 24, 32, 0, 0, 120, 0};

#define ELLIPSIS "\xe2\x80\xa6" /* U+2026, one column */

struct row {
    char *cell[NCOLS];
};

/* Characters in a UTF-8 string (continuation bytes do not count). */
static int text_width(const char *s)
{
    int n = 0;
    for (; *s; s++) {
        n += ((unsigned char)*s & 0xc0) != 0x80;
    }
    return n;
}

/* s with control bytes shown as '?', "-" when empty; caller frees. */
static char *clean(const char *s)
{
    char *out;
    size_t i;

    out = gv_strdup(*s ? s : "-");
    for (i = 0; out[i]; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c < 0x20 || c == 0x7f) {
            out[i] = '?';
        }
    }
    return out;
}

static void row_fill(struct row *r, struct json_object *rec)
{
    struct gv_buf pol;
    struct json_object *pols, *pii, *c;
    char num[64];
    size_t i, n;

    gv_buf_init(&pol, 0);
    if (json_object_object_get_ex(rec, "policies", &pols) &&
        json_object_is_type(pols, json_type_array)) {
        n = json_object_array_length(pols);
        for (i = 0; i < n; i++) {
            struct json_object *p = json_object_array_get_idx(pols, i);
            const char *act = gw_audit_member_str(p, "action");
            if (strcmp(act, "pass") == 0 || strcmp(act, "skipped") == 0 || !*act) {
                continue;
            }
            gv_buf_appendf(&pol, "%s%s:%s", pol.len ? "," : "", gw_audit_member_str(p, "name"),
                           act);
        }
    }
    if (json_object_object_get_ex(rec, "pii", &pii) && json_object_is_type(pii, json_type_object)) {
        json_object_object_foreach(pii, type, count)
        {
            gv_buf_appendf(&pol, "%s%s=%" PRId64, pol.len ? "," : "", type,
                           json_object_get_int64(count));
        }
    }
    r->cell[C_TIME] = clean(gw_audit_member_str(rec, "ts"));
    r->cell[C_DEC] = clean(gw_audit_member_str(rec, "decision"));
    snprintf(num, sizeof(num), "%" PRId64, int_field(rec, "status"));
    r->cell[C_STATUS] = clean(num);
    r->cell[C_RUN] = clean(gw_audit_member_str(rec, "run_id"));
    r->cell[C_PRINCIPAL] = clean(gw_audit_member_str(rec, "principal"));
    r->cell[C_MODEL] = clean(gw_audit_member_str(rec, "model"));
    snprintf(num, sizeof(num), "%" PRId64,
             int_field(rec, "tokens_prompt") + int_field(rec, "tokens_completion"));
    r->cell[C_TOKENS] = clean(num);
    snprintf(num, sizeof(num), "%.6f",
             json_object_object_get_ex(rec, "cost_usd", &c) ? json_object_get_double(c) : 0.0);
    r->cell[C_COST] = clean(num);
    r->cell[C_POL] = clean(pol.len ? pol.data : "");
    r->cell[C_REQ] = clean(gw_audit_member_str(rec, "request_id"));
    gv_buf_free(&pol);
}

static void row_free(struct row *r)
{
    int c;
    for (c = 0; c < NCOLS; c++) {
        gv_free(r->cell[c]);
        r->cell[c] = NULL;
    }
}

/* s padded to w columns, or cut to w - 1 characters plus an ellipsis. */
static void cell(struct gv_buf *b, const char *s, int w, bool last)
{
    int n = text_width(s), i, k;

    if (n <= w) {
        gv_buf_append_str(b, s);
        for (; !last && n < w + 2; n++) {
            gv_buf_append_char(b, ' ');
        }
        return;
    }
    for (i = 0, k = 0; s[i]; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80 && k++ == w - 1) {
            break;
        }
        gv_buf_append_char(b, s[i]);
    }
    gv_buf_append_str(b, ELLIPSIS);
    if (!last) {
        gv_buf_append_str(b, "  ");
    }
}

static void print_cells(char *const *cells, const int *w)
{
    struct gv_buf b;
    int c;

    gv_buf_init(&b, 0);
    for (c = 0; c < NCOLS; c++) {
        cell(&b, cells[c], w[c], c == NCOLS - 1);
    }
    printf("%.*s\n", (int)b.len, b.data ? b.data : "");
    gv_buf_free(&b);
}

static void print_header(const int *w)
{
    print_cells((char *const *)col_name, w);
}

/* Widths for a stream (kt events tail), which cannot look at the data first:
 * the old fixed widths, widened to the caps where the data is open-ended. */
static void stream_widths(int *w)
{
    static const int fixed[NCOLS] = {24, 8, 6, 64, 12, 14, 7, 10, 120, 40};
    memcpy(w, fixed, sizeof(fixed));
}

static void print_row(struct json_object *rec)
{
    struct row r;
    int w[NCOLS];

    memset(&r, 0, sizeof(r));
    stream_widths(w);
    row_fill(&r, rec);
    print_cells(r.cell, w);
    row_free(&r);
}

/* kt events list's table: every row first, then columns sized to them. */
static void print_table(struct row *rows, size_t n, bool wide)
{
    int w[NCOLS];
    size_t i;
    int c;

    for (c = 0; c < NCOLS; c++) {
        w[c] = text_width(col_name[c]);
        for (i = 0; i < n; i++) {
            int tw = text_width(rows[i].cell[c]);
            w[c] = tw > w[c] ? tw : w[c];
        }
        if (!wide && col_cap[c] && w[c] > col_cap[c]) {
            w[c] = col_cap[c];
        }
    }
    print_header(w);
    for (i = 0; i < n; i++) {
        print_cells(rows[i].cell, w);
    }
}

static struct json_object *parse_line(const char *line, size_t len)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, line, (int)len);
    if (o && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* Print one stored line (JSON as is, or a table row). false when unreadable. */
static bool emit(const struct opts *o, const char *line, size_t len, struct json_object *rec)
{
    if (o->json) {
        printf("%.*s\n", (int)len, line);
    }
    else {
        print_row(rec);
    }
    return true;
}

struct list_state {
    const struct opts *o;
    long shown;
    long bad;
    struct row *rows; /* table mode: the rows, printed once all are known */
    size_t nrows, cap;
};

static bool list_line(void *arg, const char *line, size_t len)
{
    struct list_state *st = arg;
    struct json_object *rec;

    if (st->shown >= st->o->limit) {
        return false;
    }
    rec = parse_line(line, len);
    if (!rec) {
        st->bad++;
        return true;
    }
    if (matches(st->o, rec)) {
        if (st->o->json) {
            emit(st->o, line, len, rec);
        }
        else {
            if (st->nrows == st->cap) {
                st->cap = st->cap ? st->cap * 2 : 64;
                st->rows = gv_realloc(st->rows, st->cap * sizeof(*st->rows));
            }
            memset(&st->rows[st->nrows], 0, sizeof(*st->rows));
            row_fill(&st->rows[st->nrows++], rec);
        }
        st->shown++;
    }
    json_object_put(rec);
    return st->shown < st->o->limit;
}

static int no_log(const char *dir, gv_rc rc)
{
    if (rc == GV_ENOTFOUND) {
        fprintf(stderr,
                "kt events: no audit log in %s (is audit-logger in the policy chain, "
                "and is --state-dir the gateway's?)\n",
                dir);
    }
    else {
        fprintf(stderr, "kt events: cannot read %s: %s\n", dir, gv_rc_str(rc));
    }
    return 1;
}

int cli_events_list(int argc, char **argv)
{
    struct opts o;
    struct list_state st;
    uint64_t *segs = NULL;
    size_t n = 0, i;
    gv_rc rc;
    int ret = parse_opts("list", argc, argv, &o);

    if (ret != CLI_ARGS_RUN) {
        return ret;
    }
    rc = gw_audit_segments_list(o.dir, &segs, &n);
    if (rc) {
        return no_log(o.dir, rc);
    }
    memset(&st, 0, sizeof(st));
    st.o = &o;
    for (i = n; i > 0 && st.shown < o.limit; i--) {
        bool stopped;
        rc = gw_audit_segment_each_reverse(o.dir, segs[i - 1], list_line, &st, &stopped);
        if (rc == GV_ENOTFOUND) {
            continue; /* removed by retention while we read */
        }
        if (rc) {
            break;
        }
    }
    gv_free(segs);
    if (!o.json && (rc == GV_OK || rc == GV_ENOTFOUND)) {
        print_table(st.rows, st.nrows, o.wide);
    }
    for (i = 0; i < st.nrows; i++) {
        row_free(&st.rows[i]);
    }
    gv_free(st.rows);
    if (rc && rc != GV_ENOTFOUND) {
        return no_log(o.dir, rc);
    }
    if (st.bad) {
        fprintf(stderr, "kt events: %ld unreadable lines skipped; run `kt events verify`\n",
                st.bad);
    }
    fflush(stdout);
    return 0;
}

int cli_events_verify(int argc, char **argv)
{
    struct opts o;
    struct gw_audit_verify_result res;
    gv_rc rc;
    int ret = parse_opts("verify", argc, argv, &o);

    if (ret != CLI_ARGS_RUN) {
        return ret;
    }
    rc = o.have_expect ? gw_audit_verify_expect(o.dir, &o.expect, &res)
                       : gw_audit_verify(o.dir, &res);
    if (o.json) {
        struct json_object *j = json_object_new_object();
        json_object_object_add(j, "ok", json_object_new_boolean(rc == GV_OK));
        json_object_object_add(j, "records", json_object_new_int64((int64_t)res.records));
        json_object_object_add(j, "segments", json_object_new_int64((int64_t)res.segments));
        json_object_object_add(j, "first_seq", json_object_new_int64((int64_t)res.first_seq));
        json_object_object_add(j, "last_seq", json_object_new_int64((int64_t)res.last_seq));
        if (rc) {
            json_object_object_add(j, "bad_seq", json_object_new_int64((int64_t)res.bad_seq));
            json_object_object_add(j, "problem", json_object_new_string(res.problem));
        }
        printf("%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
        json_object_put(j);
    }
    else if (rc == GV_OK) {
        printf("ok: %" PRIu64 " records in %" PRIu64 " segment%s, seq %" PRIu64 "..%" PRIu64
               ", hash chain intact (%s)%s\n",
               res.records, res.segments, res.segments == 1 ? "" : "s", res.first_seq, res.last_seq,
               o.dir, o.have_expect ? ", published head found" : "");
    }
    else if (rc == GV_EPROTO) {
        printf("FAILED: %s\n", res.problem);
        if (res.records) {
            printf("(%" PRIu64 " records before it verified)\n", res.records);
        }
    }
    else {
        fprintf(stderr, "kt events verify: %s\n", res.problem);
    }
    fflush(stdout);
    return rc == GV_OK ? 0 : 1;
}

/* ---- tail ---- */

static volatile sig_atomic_t tail_stop;

static void on_signal(int sig)
{
    (void)sig;
    tail_stop = 1;
}

/* Reads [*off, EOF) of path and prints the complete lines after the header;
 * *off advances past what was printed. Returns the number of records shown. */
static long tail_read(const struct opts *o, const char *path, uint64_t *off, long budget)
{
    char chunk[65536];
    struct gv_buf b;
    long shown = 0;
    size_t start = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return 0;
    }
    gv_buf_init(&b, GW_AUDIT_SEGMENT_READ_MAX);
    if (lseek(fd, (off_t)*off, SEEK_SET) >= 0) {
        for (;;) {
            ssize_t r = read(fd, chunk, sizeof(chunk));
            if (r <= 0 || gv_buf_append(&b, chunk, (size_t)r) != GV_OK) {
                break;
            }
        }
    }
    close(fd);
    while (start < b.len && (budget == 0 || shown < budget)) {
        char *nl = memchr(b.data + start, '\n', b.len - start);
        size_t len;
        struct json_object *rec;
        if (!nl) {
            break; /* a writer is mid-line: read it next time */
        }
        len = (size_t)(nl - (b.data + start));
        rec = parse_line(b.data + start, len);
        if (rec && !json_object_object_get_ex(rec, "kt_audit", NULL) && matches(o, rec)) {
            emit(o, b.data + start, len, rec);
            shown++;
        }
        json_object_put(rec);
        start += len + 1;
    }
    *off += start;
    gv_buf_free(&b);
    fflush(stdout);
    return shown;
}

int cli_events_tail(int argc, char **argv)
{
    struct opts o;
    struct sigaction sa;
    uint64_t *segs = NULL;
    size_t n = 0, i;
    uint64_t cur = 0, off = 0;
    long total = 0;
    char path[4200];
    struct stat st;
    gv_rc rc;
    int ret = parse_opts("tail", argc, argv, &o);

    if (ret != CLI_ARGS_RUN) {
        return ret;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = gw_audit_segments_list(o.dir, &segs, &n);
    if (rc) {
        return no_log(o.dir, rc);
    }
    if (!o.json) {
        int w[NCOLS];
        stream_widths(w);
        print_header(w);
    }
    if (n) {
        /* Backlog: the newest segment's last --lines records, oldest first,
         * from one read; then follow from the end of that read's last line. */
        struct gv_buf b;
        size_t e, s, *starts, *lens, k = 0;

        cur = segs[n - 1];
        if (gw_audit_segment_read(o.dir, cur, path, sizeof(path), &b) == GV_OK) {
            starts = gv_calloc((size_t)o.limit + 1, sizeof(*starts));
            lens = gv_calloc((size_t)o.limit + 1, sizeof(*lens));
            e = b.len;
            while (e > 0 && b.data[e - 1] != '\n') {
                e--;
            }
            off = e;
            while (e > 0 && k < (size_t)o.limit) {
                s = e - 1;
                while (s > 0 && b.data[s - 1] != '\n') {
                    s--;
                }
                if (s == 0) {
                    break; /* the header */
                }
                starts[k] = s;
                lens[k++] = e - 1 - s;
                e = s;
            }
            for (i = k; i > 0; i--) {
                struct json_object *rec = parse_line(b.data + starts[i - 1], lens[i - 1]);
                if (rec && matches(&o, rec)) {
                    emit(&o, b.data + starts[i - 1], lens[i - 1], rec);
                }
                json_object_put(rec);
            }
            gv_free(starts);
            gv_free(lens);
            gv_buf_free(&b);
            fflush(stdout);
        }
    }
    gv_free(segs);
    fprintf(stderr, "kt events tail: following %s (Ctrl-C stops)\n", o.dir);
    while (!tail_stop && (o.max == 0 || total < o.max)) {
        uint64_t next;
        if (cur) {
            gw_audit_segment_path(o.dir, cur, path, sizeof(path));
            total += tail_read(&o, path, &off, o.max ? o.max - total : 0);
        }
        if (o.max && total >= o.max) {
            break;
        }
        /* Move on once a newer segment exists and the current one is drained. */
        next = cur + 1;
        if (gw_audit_segment_path(o.dir, next, path, sizeof(path)) == GV_OK &&
            stat(path, &st) == 0) {
            if (cur) {
                char cpath[4200];
                struct stat cst;
                gw_audit_segment_path(o.dir, cur, cpath, sizeof(cpath));
                if (stat(cpath, &cst) == 0 && (uint64_t)cst.st_size > off) {
                    continue;
                }
            }
            cur = next;
            off = 0;
            continue;
        }
        if (!cur) {
            /* No segment yet: wait for the first. */
            if (gw_audit_segments_list(o.dir, &segs, &n) == GV_OK && n) {
                cur = segs[0];
                off = 0;
            }
            gv_free(segs);
            segs = NULL;
        }
        usleep(200 * 1000);
    }
    return 0;
}
