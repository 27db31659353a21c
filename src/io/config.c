/* The schema-driven YAML config loader (see config.h for the contracts, docs/config.md for the
 * user's view).
 *
 * How it works: libyaml's loader builds a node tree (with 0-based marks) of the whole document;
 * a syntax error anywhere stops here, before any value is looked at. The walker then visits the
 * tree in document order, resolving each mapping key to a path ("distill" + "csd" + "grad"),
 * and writes each value, validated against its schema entry, into a scratch copy of the config.
 * Only when the whole document is valid is the scratch copy assigned to the caller's struct.
 * Defaults and --set overrides go through the same walker (a default is YAML text in the table).
 */
#include "io/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define CFG_MAX_KEYS 256          /* capacity of the per-document bookkeeping (schema_check) */
#define CFG_MAX_DEPTH 8           /* path components */
#define CFG_KEYPATH_MAX 256       /* a key path as written, with the NUL */
#define CFG_TEXT_MAX 4096         /* a formatted value: 511 chars escaped as \xNN, or a list */
#define CFG_EXPECT_MAX 1024       /* an "(expected ...)" text */
#define CFG_ECHO_MAX 48           /* characters of a bad value repeated in a message */
#define CFG_NAME_CMP_MAX 64       /* names longer than this get no "did you mean" */
#define CFG_FILE_MAX (16u << 20)  /* a config file larger than this is refused */

/* ------------------------------------------------------------------------------------------ */
/* small string builder (silently truncates at its capacity) */

typedef struct strbuf {
    char *buf;
    size_t cap, len;
} strbuf;

static strbuf sb_init(char *buf, size_t cap) {
    buf[0] = 0;
    return (strbuf){buf, cap, 0};
}

static void sb_add(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(strbuf *sb, const char *fmt, ...) {
    if (sb->len + 1 >= sb->cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
    va_end(ap);
    if (n > 0) sb->len = (size_t)n < sb->cap - sb->len ? sb->len + (size_t)n : sb->cap - 1;
}

/* ------------------------------------------------------------------------------------------ */
/* schema lookup and key paths */

const dd2_cfg_key *dd2_config_find(const char *path) {
    for (size_t i = 0; i < dd2_cfg_schema_len; i++)
        if (strcmp(dd2_cfg_schema[i].path, path) == 0) return &dd2_cfg_schema[i];
    return NULL;
}

/* 1 when key path `path` lies inside section `section` ("" is the top level). */
static int in_section(const char *path, const char *section) {
    size_t n = strlen(section);
    return n == 0 || (strncmp(path, section, n) == 0 && path[n] == '.');
}

/* 1 when `path` names a section: a proper prefix of some key path (the top level included). */
static int is_section(const char *path) {
    for (size_t i = 0; i < dd2_cfg_schema_len; i++)
        if (in_section(dd2_cfg_schema[i].path, path)) return 1;
    return 0;
}

/* The first component of `path` below `section` (which must contain it): start and length. */
static const char *child_name(const char *path, const char *section, size_t *len) {
    const char *s = path + (section[0] ? strlen(section) + 1 : 0);
    *len = strcspn(s, ".");
    return s;
}

/* Call fn once for each distinct direct child (key or subsection name) of `section`, in
 * schema order. */
typedef void (*child_fn)(const char *name, size_t len, void *ctx);
static void for_each_child(const char *section, child_fn fn, void *ctx) {
    for (size_t i = 0; i < dd2_cfg_schema_len; i++) {
        const char *pi = dd2_cfg_schema[i].path;
        if (!in_section(pi, section)) continue;
        size_t len, lj;
        const char *name = child_name(pi, section, &len);
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) {
            const char *pj = dd2_cfg_schema[j].path;
            if (!in_section(pj, section)) continue;
            const char *nj = child_name(pj, section, &lj);
            seen = lj == len && memcmp(nj, name, len) == 0;
        }
        if (!seen) fn(name, len, ctx);
    }
}

static void add_child_to_list(const char *name, size_t len, void *ctx) {
    strbuf *sb = ctx;
    sb_add(sb, "%s%.*s", sb->len ? ", " : "", (int)len, name);
}

/* "a, b, c": the direct children of `section`. */
static void list_children(const char *section, char *buf, size_t cap) {
    strbuf sb = sb_init(buf, cap);
    for_each_child(section, add_child_to_list, &sb);
}

/* Join "prefix" and "name" with a '.'; 0 when it does not fit. */
static int join_path(char *out, size_t cap, const char *prefix, const char *name) {
    int n = snprintf(out, cap, "%s%s%s", prefix, prefix[0] ? "." : "", name);
    return n >= 0 && (size_t)n < cap;
}

/* ------------------------------------------------------------------------------------------ */
/* "did you mean": edit distance between a misspelt path component and the known ones */

/* Levenshtein distance, ignoring ASCII case ("LR" is a typo of "lr"). */
static size_t edit_distance(const char *a, size_t la, const char *b, size_t lb) {
    if (la > CFG_NAME_CMP_MAX || lb > CFG_NAME_CMP_MAX) return SIZE_MAX;
    size_t row[CFG_NAME_CMP_MAX + 1];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* How many edits (beyond case) still count as a typo of a name of length n. */
static size_t typo_budget(size_t n) { return n <= 2 ? 0 : n <= 4 ? 1 : n <= 8 ? 2 : 3; }

typedef struct nearest {
    const char *want;
    size_t want_len;
    size_t dist;
    const char *name;
    size_t name_len;
} nearest;

static void consider_child(const char *name, size_t len, void *ctx) {
    nearest *nr = ctx;
    size_t d = edit_distance(nr->want, nr->want_len, name, len);
    if (d < nr->dist) {
        nr->dist = d;
        nr->name = name;
        nr->name_len = len;
    }
}

/* The longest known section that `path` lies in (at least the top level, ""). */
static void enclosing_section(const char *path, char *out, size_t cap) {
    snprintf(out, cap, "%s", path);
    for (char *dot = strrchr(out, '.'); dot; dot = strrchr(out, '.')) {
        *dot = 0;
        if (is_section(out)) return;
    }
    out[0] = 0;
}

/* A known path close to the unknown `path`, or 0. Tries a typo of the first unknown component
 * (keeping the rest of the path when that makes a known path), then the same last component
 * in another section ("teacher.cfg_scale" -> "sample.cfg_scale"). */
static int suggest_path(const char *path, const char *section, char *out, size_t cap) {
    size_t want_len;
    const char *want = child_name(path, section, &want_len);
    nearest nr = {want, want_len, SIZE_MAX, NULL, 0};
    for_each_child(section, consider_child, &nr);
    if (nr.name && nr.dist <= typo_budget(want_len)) {
        strbuf sb = sb_init(out, cap);
        sb_add(&sb, "%s%s%.*s", section, section[0] ? "." : "", (int)nr.name_len, nr.name);
        size_t corrected = sb.len;
        sb_add(&sb, "%s", want + want_len);
        if (!dd2_config_find(out) && !is_section(out)) out[corrected] = 0;
        return 1;
    }
    const char *leaf = strrchr(path, '.');
    leaf = leaf ? leaf + 1 : path;
    for (size_t i = 0; i < dd2_cfg_schema_len; i++) {
        const char *p = dd2_cfg_schema[i].path;
        const char *kleaf = strrchr(p, '.');
        if (strcmp(kleaf ? kleaf + 1 : p, leaf) == 0) {
            snprintf(out, cap, "%s", p);
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* where a message comes from, and failing with one */

typedef struct cfg_src {
    const char *where;   /* the file name, "--set a.b=v", or "schema default" */
    int with_pos;        /* 1: messages start "where:LINE:COL: "; 0: "where: " */
    int code;            /* status code of failures */
    dd2_status *st;
} cfg_src;

/* Fail with "where[:LINE:COL]: [path: ]message" (marks are 0-based, messages 1-based). */
static int src_fail(const cfg_src *src, const yaml_mark_t *mark, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int src_fail(const cfg_src *src, const yaml_mark_t *mark, const char *path, const char *fmt, ...) {
    char what[DD2_MSG_MAX], pos[64] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (src->with_pos && mark) snprintf(pos, sizeof pos, ":%zu:%zu", mark->line + 1, mark->column + 1);
    return DD2_FAIL(src->st, src->code, "%s%s: %s%s%s", src->where, pos, path ? path : "", path ? ": " : "", what);
}

static int fail_duplicate(const cfg_src *src, const yaml_mark_t *mark, const char *path, const yaml_mark_t *first) {
    return src_fail(src, mark, path, "duplicate key (first defined at line %zu, column %zu)", first->line + 1,
                    first->column + 1);
}

static int fail_unknown(const cfg_src *src, const yaml_mark_t *mark, const char *path) {
    char section[CFG_KEYPATH_MAX], hint[CFG_KEYPATH_MAX], known[CFG_EXPECT_MAX];
    const char *what = strchr(path, '.') ? "unknown key" : "unknown section";
    enclosing_section(path, section, sizeof section);
    if (suggest_path(path, section, hint, sizeof hint)) return src_fail(src, mark, path, "%s (did you mean '%s'?)", what, hint);
    list_children(section, known, sizeof known);
    if (!section[0]) return src_fail(src, mark, path, "%s (expected one of the sections: %s)", what, known);
    return src_fail(src, mark, path, "%s (expected one of the keys of %s: %s)", what, section, known);
}

/* ------------------------------------------------------------------------------------------ */
/* describing and formatting values */

/* The shortest text that reads back to exactly v: whole numbers below 1e15 as integers
 * ("100", not "1e+02"), others as the shortest "%g". */
static void format_double(double v, char *buf, size_t cap) {
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, cap, "%.0f", v);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static dd2_cfg_type element_type(const dd2_cfg_key *k) {
    if (k->type == DD2_CFG_INT_LIST) return DD2_CFG_INT;
    if (k->type == DD2_CFG_FLOAT_LIST) return DD2_CFG_FLOAT;
    return k->type;
}

static void describe_range(strbuf *sb, const dd2_cfg_key *k) {
    char lo[40], hi[40];
    int has_lo = isfinite(k->min), has_hi = isfinite(k->max);
    int open_lo = (k->flags & DD2_CFG_MIN_EXCL) != 0, open_hi = (k->flags & DD2_CFG_MAX_EXCL) != 0;
    format_double(k->min, lo, sizeof lo);
    format_double(k->max, hi, sizeof hi);
    if (has_lo && has_hi)
        sb_add(sb, " in %c%s, %s%c", open_lo ? '(' : '[', lo, hi, open_hi ? ')' : ']');
    else if (has_lo)
        sb_add(sb, " %s %s", open_lo ? ">" : ">=", lo);
    else if (has_hi)
        sb_add(sb, " %s %s", open_hi ? "<" : "<=", hi);
}

/* What a valid value looks like, for "(expected ...)": of the whole key, or (element = 1) of
 * one list element. */
static void describe_expected(const dd2_cfg_key *k, int element, char *buf, size_t cap) {
    strbuf sb = sb_init(buf, cap);
    dd2_cfg_type t = element ? element_type(k) : k->type;
    switch (t) {
    case DD2_CFG_INT:
        sb_add(&sb, "an integer");
        describe_range(&sb, k);
        break;
    case DD2_CFG_FLOAT:
        sb_add(&sb, "a number");
        describe_range(&sb, k);
        break;
    case DD2_CFG_BOOL:
        sb_add(&sb, "true or false");
        break;
    case DD2_CFG_STRING:
        sb_add(&sb, "a %sstring of at most %zu characters", k->min >= 1 ? "non-empty " : "", k->size - 1);
        break;
    case DD2_CFG_ENUM:
        sb_add(&sb, "one of:");
        for (size_t i = 0; k->enum_values[i]; i++) sb_add(&sb, "%s %s", i ? "," : "", k->enum_values[i]);
        break;
    case DD2_CFG_INT_LIST:
    case DD2_CFG_FLOAT_LIST:
        if (k->min_len == k->max_len)
            sb_add(&sb, "a list of %d", k->min_len);
        else if (k->min_len == 0)
            sb_add(&sb, "a list of up to %d", k->max_len);
        else
            sb_add(&sb, "a list of %d to %d", k->min_len, k->max_len);
        sb_add(&sb, t == DD2_CFG_INT_LIST ? " integers" : " numbers");
        describe_range(&sb, k);
        break;
    }
}

/* A string as a YAML double-quoted scalar. */
static void quote_string(strbuf *sb, const char *s) {
    sb_add(sb, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *named = *p == '\n' ? "\\n" : *p == '\t' ? "\\t" : *p == '\r' ? "\\r" : NULL;
        if (*p == '"' || *p == '\\')
            sb_add(sb, "\\%c", *p);
        else if (named)
            sb_add(sb, "%s", named);
        else if (*p < 0x20 || *p == 0x7f)
            sb_add(sb, "\\x%02x", *p);
        else
            sb_add(sb, "%c", *p);
    }
    sb_add(sb, "\"");
}

/* The value of key k in cfg as YAML text that the loader reads back to the same value. */
static void format_value(const dd2_config *cfg, const dd2_cfg_key *k, char *buf, size_t cap) {
    const void *field = (const char *)cfg + k->offset;
    strbuf sb = sb_init(buf, cap);
    char num[40];
    switch (k->type) {
    case DD2_CFG_INT:
        sb_add(&sb, "%d", *(const int *)field);
        break;
    case DD2_CFG_FLOAT:
        format_double(*(const double *)field, num, sizeof num);
        sb_add(&sb, "%s", num);
        break;
    case DD2_CFG_BOOL:
        sb_add(&sb, "%s", *(const bool *)field ? "true" : "false");
        break;
    case DD2_CFG_STRING:
        quote_string(&sb, field);
        break;
    case DD2_CFG_ENUM: {
        int v = *(const int *)field, n = 0;
        while (k->enum_values[n]) n++;
        sb_add(&sb, "%s", v >= 0 && v < n ? k->enum_values[v] : "~"); /* "~" fails on re-reading */
        break;
    }
    case DD2_CFG_INT_LIST:
    case DD2_CFG_FLOAT_LIST: {
        const dd2_int_list *ints = field;
        const dd2_float_list *floats = field;
        int ints_kind = k->type == DD2_CFG_INT_LIST, n = ints_kind ? ints->n : floats->n;
        sb_add(&sb, "[");
        for (int i = 0; i < n && i < DD2_CFG_LIST_MAX; i++) {
            if (ints_kind)
                snprintf(num, sizeof num, "%d", ints->v[i]);
            else
                format_double(floats->v[i], num, sizeof num);
            sb_add(&sb, "%s%s", i ? ", " : "", num);
        }
        sb_add(&sb, "]");
        break;
    }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* reading one scalar value */

static const char *node_kind(const yaml_node_t *n) {
    return n->type == YAML_MAPPING_NODE ? "a mapping" : n->type == YAML_SEQUENCE_NODE ? "a list" : "a scalar";
}

/* YAML's null: an empty plain scalar, ~, null, Null, NULL. */
static int is_null(const yaml_node_t *n) {
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *s = (const char *)n->data.scalar.value;
    return !s[0] || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

typedef enum { NUM_NONE, NUM_INTEGER, NUM_REAL } num_kind;

/* Decimal number syntax: [+-] digits [. digits] [e [+-] digits] (".5" and "5." too).
 * NUM_INTEGER when there is neither a point nor an exponent. */
static num_kind number_kind(const char *s) {
    static const char digits[] = "0123456789";
    const char *p = s + (*s == '+' || *s == '-');
    size_t int_digits = strspn(p, digits), frac_digits = 0;
    int real = 0;
    p += int_digits;
    if (*p == '.') {
        real = 1;
        frac_digits = strspn(++p, digits);
        p += frac_digits;
    }
    if (int_digits + frac_digits == 0) return NUM_NONE;
    if (*p == 'e' || *p == 'E') {
        real = 1;
        p++;
        p += *p == '+' || *p == '-';
        size_t exp_digits = strspn(p, digits);
        if (!exp_digits) return NUM_NONE;
        p += exp_digits;
    }
    if (*p) return NUM_NONE;
    return real ? NUM_REAL : NUM_INTEGER;
}

/* 1 when v lies in the key's range (open or closed ends). */
static int in_range(const dd2_cfg_key *k, double v) {
    if ((k->flags & DD2_CFG_MIN_EXCL) ? v <= k->min : v < k->min) return 0;
    if ((k->flags & DD2_CFG_MAX_EXCL) ? v >= k->max : v > k->max) return 0;
    return 1;
}

/* One scalar being read: everything a message about it needs. */
typedef struct scalar_in {
    const cfg_src *src;
    const dd2_cfg_key *key;
    const char *path;          /* as shown: "distill.betas[1]" for a list element */
    const yaml_mark_t *mark;   /* the value's position */
    const char *text;          /* the scalar, NUL-terminated */
    size_t len;                /* its length (it may hold a NUL from a "\0" escape) */
    char echo[CFG_ECHO_MAX + 8];          /* the text shortened for messages */
    char expect[CFG_EXPECT_MAX];          /* what a valid value looks like */
} scalar_in;

/* Fail with "<what> (expected <expect>)" about the scalar. */
static int bad_scalar(const scalar_in *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad_scalar(const scalar_in *in, const char *fmt, ...) {
    char what[DD2_MSG_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return src_fail(in->src, in->mark, in->path, "%s (expected %s)", what, in->expect);
}

static int read_int(const scalar_in *in, int *out) {
    num_kind kind = number_kind(in->text);
    if (kind == NUM_NONE) return bad_scalar(in, "'%s' is not an integer", in->echo);
    double v;
    errno = 0;
    if (kind == NUM_INTEGER) {
        long long ll = strtoll(in->text, NULL, 10);
        v = errno == ERANGE ? (ll < 0 ? -INFINITY : INFINITY) : (double)ll;
    } else {
        /* exponent forms are fine when whole: 1e5; not 1.5, and not an underflow like 1e-400 */
        v = strtod(in->text, NULL);
        if ((errno == ERANGE && !isinf(v)) || (isfinite(v) && v != floor(v)))
            return bad_scalar(in, "%s is not an integer", in->echo);
    }
    if (!in_range(in->key, v) || v < INT_MIN || v > INT_MAX) return bad_scalar(in, "%s is out of range", in->echo);
    *out = (int)v;
    return DD2_OK;
}

static int read_float(const scalar_in *in, double *out) {
    if (number_kind(in->text) == NUM_NONE) return bad_scalar(in, "'%s' is not a number", in->echo);
    double v = strtod(in->text, NULL); /* an underflow reads as 0 or a denormal: fine */
    if (!isfinite(v) || !in_range(in->key, v)) return bad_scalar(in, "%s is out of range", in->echo);
    *out = v;
    return DD2_OK;
}

static int read_bool(const scalar_in *in, bool *out) {
    static const char *const yes[] = {"true", "True", "TRUE"}, *const no[] = {"false", "False", "FALSE"};
    for (int i = 0; i < 3; i++) {
        if (!strcmp(in->text, yes[i])) return *out = true, DD2_OK;
        if (!strcmp(in->text, no[i])) return *out = false, DD2_OK;
    }
    return bad_scalar(in, "'%s' is not a boolean", in->echo);
}

static int read_enum(const scalar_in *in, int *out) {
    for (int i = 0; in->key->enum_values[i]; i++)
        if (!strcmp(in->text, in->key->enum_values[i])) return *out = i, DD2_OK;
    return bad_scalar(in, "'%s' is not a valid choice", in->echo);
}

static int read_string(const scalar_in *in, char *out) {
    if (memchr(in->text, 0, in->len)) return bad_scalar(in, "string contains a NUL character");
    if (in->len + 1 > in->key->size) return bad_scalar(in, "string of %zu characters is too long", in->len);
    if ((double)in->len < in->key->min) return bad_scalar(in, "empty string");
    memcpy(out, in->text, in->len + 1);
    return DD2_OK;
}

/* Read scalar node n as key k's (element) type into dst. key_mark locates a missing value. */
static int read_scalar(const cfg_src *src, const dd2_cfg_key *k, const char *path, const yaml_node_t *n,
                       const yaml_mark_t *key_mark, void *dst) {
    scalar_in in = {.src = src, .key = k, .path = path, .mark = &n->start_mark};
    dd2_cfg_type t = element_type(k);
    describe_expected(k, 1, in.expect, sizeof in.expect);
    if (n->type != YAML_SCALAR_NODE) return bad_scalar(&in, "got %s", node_kind(n));
    if (is_null(n)) {
        in.mark = key_mark;
        return bad_scalar(&in, "missing value");
    }
    in.text = (const char *)n->data.scalar.value;
    in.len = n->data.scalar.length;
    strbuf echo = sb_init(in.echo, sizeof in.echo);
    for (size_t i = 0; i < in.len && i < CFG_ECHO_MAX; i++)
        sb_add(&echo, "%c", (unsigned char)in.text[i] < 0x20 ? '?' : in.text[i]);
    if (in.len > CFG_ECHO_MAX) sb_add(&echo, "...");
    int quoted = n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    if (quoted && (t == DD2_CFG_INT || t == DD2_CFG_FLOAT || t == DD2_CFG_BOOL))
        return bad_scalar(&in, "'%s' is a quoted string", in.echo);
    switch (t) {
    case DD2_CFG_INT: return read_int(&in, dst);
    case DD2_CFG_FLOAT: return read_float(&in, dst);
    case DD2_CFG_BOOL: return read_bool(&in, dst);
    case DD2_CFG_ENUM: return read_enum(&in, dst);
    case DD2_CFG_STRING: return read_string(&in, dst);
    default: return DD2_FAIL(src->st, DD2_ERR_RUNTIME, "%s: bad schema type %d", k->path, (int)t);
    }
}

/* Read a list-valued key: a YAML sequence of scalars with the schema's length limits. */
static int read_list(const cfg_src *src, yaml_document_t *doc, const dd2_cfg_key *k, const char *path,
                     const yaml_node_t *n, const yaml_mark_t *key_mark, void *dst) {
    char expect[CFG_EXPECT_MAX];
    describe_expected(k, 0, expect, sizeof expect);
    if (is_null(n)) return src_fail(src, key_mark, path, "missing value (expected %s)", expect);
    if (n->type != YAML_SEQUENCE_NODE) return src_fail(src, &n->start_mark, path, "got %s (expected %s)", node_kind(n), expect);
    long count = n->data.sequence.items.top - n->data.sequence.items.start;
    if (count < k->min_len || count > k->max_len)
        return src_fail(src, &n->start_mark, path, "list has %ld element%s (expected %s)", count, count == 1 ? "" : "s", expect);
    union {
        dd2_int_list i;
        dd2_float_list f;
    } list;
    memset(&list, 0, sizeof list);
    for (long i = 0; i < count; i++) {
        yaml_node_t *item = yaml_document_get_node(doc, n->data.sequence.items.start[i]);
        char item_path[CFG_KEYPATH_MAX + 24];
        snprintf(item_path, sizeof item_path, "%s[%ld]", path, i);
        void *slot = k->type == DD2_CFG_INT_LIST ? (void *)&list.i.v[i] : (void *)&list.f.v[i];
        DD2_TRY(read_scalar(src, k, item_path, item, &item->start_mark, slot));
    }
    if (k->type == DD2_CFG_INT_LIST)
        list.i.n = (int)count;
    else
        list.f.n = (int)count;
    memcpy(dst, &list, k->size);
    return DD2_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* walking a document */

typedef struct cfg_walk {
    const cfg_src *src;
    yaml_document_t *doc;
    dd2_config *cfg;                  /* the scratch copy receiving values */
    unsigned char set[CFG_MAX_KEYS];  /* schema key i was set by this document ... */
    yaml_mark_t set_at[CFG_MAX_KEYS]; /* ... at the mark of its key */
} cfg_walk;

static int walk_value(cfg_walk *w, const char *path, const yaml_mark_t *key_mark, yaml_node_t *v);

/* The keys of one mapping, in order: each must be a scalar, and appear once. */
static int walk_mapping(cfg_walk *w, const char *section, yaml_node_t *map) {
    yaml_node_pair_t *start = map->data.mapping.pairs.start, *top = map->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = start; p < top; p++) {
        yaml_node_t *key = yaml_document_get_node(w->doc, p->key);
        if (key->type != YAML_SCALAR_NODE)
            return src_fail(w->src, &key->start_mark, section[0] ? section : NULL,
                            "a key must be a name, got %s (expected a key such as 'lr')", node_kind(key));
        const char *name = (const char *)key->data.scalar.value;
        char path[CFG_KEYPATH_MAX];
        if (!join_path(path, sizeof path, section, name))
            return src_fail(w->src, &key->start_mark, section[0] ? section : NULL, "unknown key of %zu characters",
                            strlen(name));
        for (yaml_node_pair_t *q = start; q < p; q++) {
            yaml_node_t *earlier = yaml_document_get_node(w->doc, q->key);
            if (earlier->type == YAML_SCALAR_NODE && earlier->data.scalar.length == key->data.scalar.length &&
                !memcmp(earlier->data.scalar.value, name, key->data.scalar.length))
                return fail_duplicate(w->src, &key->start_mark, path, &earlier->start_mark);
        }
        DD2_TRY(walk_value(w, path, &key->start_mark, yaml_document_get_node(w->doc, p->value)));
    }
    return DD2_OK;
}

/* The value v found under `path` (whose key is at key_mark): a key's value, or a section. */
static int walk_value(cfg_walk *w, const char *path, const yaml_mark_t *key_mark, yaml_node_t *v) {
    const dd2_cfg_key *k = dd2_config_find(path);
    if (k) {
        size_t i = (size_t)(k - dd2_cfg_schema);
        if (i >= CFG_MAX_KEYS) return DD2_FAIL(w->src->st, DD2_ERR_RUNTIME, "schema larger than CFG_MAX_KEYS");
        if (w->set[i]) return fail_duplicate(w->src, key_mark, path, &w->set_at[i]);
        void *dst = (char *)w->cfg + k->offset;
        if (k->type == DD2_CFG_INT_LIST || k->type == DD2_CFG_FLOAT_LIST)
            DD2_TRY(read_list(w->src, w->doc, k, path, v, key_mark, dst));
        else
            DD2_TRY(read_scalar(w->src, k, path, v, key_mark, dst));
        w->set[i] = 1;
        w->set_at[i] = *key_mark;
        return DD2_OK;
    }
    if (!is_section(path)) return fail_unknown(w->src, key_mark, path);
    if (v->type == YAML_MAPPING_NODE) return walk_mapping(w, path, v);
    if (is_null(v)) return DD2_OK; /* "teacher:" with nothing under it */
    char keys[CFG_EXPECT_MAX];
    list_children(path, keys, sizeof keys);
    return src_fail(w->src, &v->start_mark, path, "got %s where a section belongs (expected a mapping with keys: %s)",
                    node_kind(v), keys);
}

/* ------------------------------------------------------------------------------------------ */
/* loading YAML text (syntax errors) */

/* A mark for a byte offset (reader errors carry only an offset). */
static yaml_mark_t mark_at_offset(const char *bytes, size_t len, size_t offset) {
    yaml_mark_t m = {offset, 0, 0};
    if (offset > len) offset = len;
    for (size_t i = 0; i < offset; i++) {
        if (bytes[i] == '\n') {
            m.line++;
            m.column = 0;
        } else {
            m.column++;
        }
    }
    return m;
}

static int syntax_fail(const cfg_src *src, const yaml_parser_t *p, const char *bytes, size_t len) {
    if (p->error == YAML_MEMORY_ERROR) return DD2_FAIL(src->st, DD2_ERR_RUNTIME, "%s: out of memory parsing YAML", src->where);
    yaml_mark_t mark = p->error == YAML_READER_ERROR ? mark_at_offset(bytes, len, p->problem_offset) : p->problem_mark;
    const char *problem = p->problem ? p->problem : "unreadable YAML";
    if (p->context) return src_fail(src, &mark, NULL, "syntax error: %s (%s)", problem, p->context);
    return src_fail(src, &mark, NULL, "syntax error: %s", problem);
}

/* Parse bytes[0..len) as exactly one YAML document into *doc (the caller deletes it on
 * success). A document with no content has no root node. */
static int load_yaml(const cfg_src *src, const char *bytes, size_t len, yaml_document_t *doc) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) return DD2_FAIL(src->st, DD2_ERR_RUNTIME, "out of memory starting the YAML parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)bytes, len);
    int rc = DD2_OK;
    if (!yaml_parser_load(&p, doc)) {
        rc = syntax_fail(src, &p, bytes, len);
    } else {
        yaml_document_t extra;
        if (!yaml_parser_load(&p, &extra)) {
            rc = syntax_fail(src, &p, bytes, len);
        } else {
            if (yaml_document_get_root_node(&extra))
                rc = src_fail(src, &extra.start_mark, NULL, "a second YAML document starts here (expected one document)");
            yaml_document_delete(&extra);
        }
        if (rc != DD2_OK) yaml_document_delete(doc);
    }
    yaml_parser_delete(&p);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* cross-key rules */

static int rule_fail(const cfg_src *src, const yaml_mark_t *mark, const char *path, const dd2_config *cfg,
                     const dd2_cfg_rule *r) {
    char va[CFG_TEXT_MAX], vb[CFG_TEXT_MAX];
    format_value(cfg, dd2_config_find(r->a), va, sizeof va);
    format_value(cfg, dd2_config_find(r->b), vb, sizeof vb);
    return src_fail(src, mark, path, "%s = %s and %s = %s conflict (expected %s %s %s)", r->a, va, r->b, vb, r->a,
                    r->relation, r->b);
}

/* The rules that involve a key this document set; reported at the later of their keys. */
static int check_rules_of_document(const cfg_walk *w) {
    for (size_t i = 0; i < dd2_cfg_rules_len; i++) {
        const dd2_cfg_rule *r = &dd2_cfg_rules[i];
        size_t ia = (size_t)(dd2_config_find(r->a) - dd2_cfg_schema), ib = (size_t)(dd2_config_find(r->b) - dd2_cfg_schema);
        if ((!w->set[ia] && !w->set[ib]) || r->holds(w->cfg)) continue;
        size_t at = !w->set[ia] || (w->set[ib] && w->set_at[ib].index > w->set_at[ia].index) ? ib : ia;
        return rule_fail(w->src, &w->set_at[at], dd2_cfg_schema[at].path, w->cfg, r);
    }
    return DD2_OK;
}

int dd2_config_check(const dd2_config *cfg, dd2_status *st) {
    cfg_src src = {"config", 0, DD2_ERR_INPUT, st};
    for (size_t i = 0; i < dd2_cfg_rules_len; i++)
        if (!dd2_cfg_rules[i].holds(cfg)) return rule_fail(&src, NULL, NULL, cfg, &dd2_cfg_rules[i]);
    return DD2_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* the loading entry points */

static void walk_init(cfg_walk *w, const cfg_src *src, yaml_document_t *doc, dd2_config *scratch) {
    memset(w, 0, sizeof *w);
    w->src = src;
    w->doc = doc;
    w->cfg = scratch;
}

/* Apply YAML text (a value) to one key or section path; *cfg changes only on success. */
static int apply_text(dd2_config *cfg, const cfg_src *src, const char *path, const char *text, size_t len) {
    yaml_document_t doc;
    DD2_TRY(load_yaml(src, text, len, &doc));
    if (!yaml_document_get_root_node(&doc)) { /* no value at all: read it as YAML's null */
        yaml_document_delete(&doc);
        if (!yaml_document_initialize(&doc, NULL, NULL, NULL, 1, 1) ||
            !yaml_document_add_scalar(&doc, NULL, (yaml_char_t *)"", 0, YAML_PLAIN_SCALAR_STYLE))
            return DD2_FAIL(src->st, DD2_ERR_RUNTIME, "out of memory building a YAML node");
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    dd2_config scratch = *cfg;
    cfg_walk w;
    walk_init(&w, src, &doc, &scratch);
    int rc = walk_value(&w, path, &root->start_mark, root);
    yaml_document_delete(&doc);
    if (rc == DD2_OK) *cfg = scratch;
    return rc;
}

static int defaults_st(dd2_config *cfg, dd2_status *st) {
    cfg_src src = {"schema default", 0, DD2_ERR_RUNTIME, st};
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < dd2_cfg_schema_len; i++) {
        const dd2_cfg_key *k = &dd2_cfg_schema[i];
        DD2_TRY(apply_text(cfg, &src, k->path, k->def, strlen(k->def)));
    }
    return DD2_OK;
}

int dd2_config_defaults(dd2_config *cfg) {
    dd2_status st;
    dd2_status_clear(&st);
    return defaults_st(cfg, &st);
}

int dd2_config_parse(dd2_config *cfg, const char *filename, const char *bytes, size_t len, dd2_status *st) {
    cfg_src src = {filename ? filename : "(config)", 1, DD2_ERR_INPUT, st};
    yaml_document_t doc;
    DD2_TRY(load_yaml(&src, bytes ? bytes : "", bytes ? len : 0, &doc));
    dd2_config scratch = *cfg;
    cfg_walk w;
    walk_init(&w, &src, &doc, &scratch);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int rc = DD2_OK;
    if (root && root->type == YAML_MAPPING_NODE)
        rc = walk_mapping(&w, "", root);
    else if (root && !is_null(root))
        rc = src_fail(&src, &root->start_mark, NULL, "the top level is %s (expected a mapping of sections such as 'teacher:')",
                      node_kind(root));
    if (rc == DD2_OK) rc = check_rules_of_document(&w);
    yaml_document_delete(&doc);
    if (rc == DD2_OK) *cfg = scratch;
    return rc;
}

int dd2_config_set(dd2_config *cfg, const char *assignment, dd2_status *st) {
    char where[CFG_KEYPATH_MAX + 64], path[CFG_KEYPATH_MAX];
    snprintf(where, sizeof where, "--set %.*s%s", CFG_KEYPATH_MAX, assignment,
             strlen(assignment) > CFG_KEYPATH_MAX ? "..." : "");
    cfg_src src = {where, 0, DD2_ERR_INPUT, st};
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment) return src_fail(&src, NULL, NULL, "expected KEY=VALUE (e.g. --set teacher.lr=1e-4)");
    size_t n = (size_t)(eq - assignment);
    if (n >= sizeof path) return src_fail(&src, NULL, NULL, "key of %zu characters is too long", n);
    memcpy(path, assignment, n);
    path[n] = 0;
    return apply_text(cfg, &src, path, eq + 1, strlen(eq + 1));
}

int dd2_config_read_file(const char *path, char **bytes, size_t *len, dd2_status *st) {
    *bytes = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return DD2_FAIL(st, DD2_ERR_INPUT, "%s: cannot open config file: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = DD2_MALLOC(cap, st);
    int rc = buf ? DD2_OK : DD2_ERR_RUNTIME;
    while (rc == DD2_OK) {
        if (n + 1 >= cap) {
            char *bigger = cap >= CFG_FILE_MAX ? NULL : realloc(buf, cap * 2);
            if (!bigger) {
                rc = cap >= CFG_FILE_MAX ? DD2_FAIL(st, DD2_ERR_INPUT, "%s: config file larger than %u MiB", path, CFG_FILE_MAX >> 20)
                                         : DD2_FAIL(st, DD2_ERR_RUNTIME, "%s: out of memory reading the config", path);
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) rc = DD2_FAIL(st, DD2_ERR_INPUT, "%s: cannot read config file: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (rc != DD2_OK) {
        free(buf);
        return rc;
    }
    buf[n] = 0;
    *bytes = buf;
    *len = n;
    return DD2_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* output */

/* Split "a.b.c" into components; returns their number (at most CFG_MAX_DEPTH). */
static size_t split_path(const char *path, const char *parts[], size_t lens[]) {
    size_t n = 0;
    for (const char *s = path; n < CFG_MAX_DEPTH; n++) {
        parts[n] = s;
        lens[n] = strcspn(s, ".");
        if (!s[lens[n]]) return n + 1;
        s += lens[n] + 1;
    }
    return n;
}

void dd2_config_print(FILE *f, const dd2_config *cfg) {
    const char *prev[CFG_MAX_DEPTH], *cur[CFG_MAX_DEPTH];
    size_t prev_len[CFG_MAX_DEPTH], cur_len[CFG_MAX_DEPTH], prev_n = 0;
    char value[CFG_TEXT_MAX];
    for (size_t i = 0; i < dd2_cfg_schema_len; i++) {
        size_t n = split_path(dd2_cfg_schema[i].path, cur, cur_len), same = 0;
        /* sections shared with the previous key stay open; the others are opened here */
        while (prev_n > 0 && same + 1 < n && same + 1 < prev_n && cur_len[same] == prev_len[same] &&
               !memcmp(cur[same], prev[same], cur_len[same]))
            same++;
        for (size_t d = same; d + 1 < n; d++) {
            if (d == 0 && prev_n > 0) fputc('\n', f);
            fprintf(f, "%*s%.*s:\n", (int)(2 * d), "", (int)cur_len[d], cur[d]);
        }
        format_value(cfg, &dd2_cfg_schema[i], value, sizeof value);
        fprintf(f, "%*s%.*s: %s\n", (int)(2 * (n - 1)), "", (int)cur_len[n - 1], cur[n - 1], value);
        memcpy(prev, cur, sizeof cur);
        memcpy(prev_len, cur_len, sizeof cur_len);
        prev_n = n;
    }
}

int dd2_config_to_yaml(const dd2_config *cfg, char **text, size_t *len, dd2_status *st) {
    *text = NULL;
    *len = 0;
    FILE *f = open_memstream(text, len);
    if (!f) return DD2_FAIL(st, DD2_ERR_RUNTIME, "cannot open a memory stream: %s", strerror(errno));
    dd2_config_print(f, cfg);
    if (fclose(f) != 0) {
        free(*text);
        *text = NULL;
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "out of memory formatting the config");
    }
    return DD2_OK;
}

void dd2_config_print_schema(FILE *f) {
    char expect[CFG_EXPECT_MAX];
    fprintf(f, "# every dd2 config key: path: valid values; default\n#     what it does\n");
    for (size_t i = 0; i < dd2_cfg_schema_len; i++) {
        const dd2_cfg_key *k = &dd2_cfg_schema[i];
        describe_expected(k, 0, expect, sizeof expect);
        fprintf(f, "%s: %s; default %s\n    %s\n", k->path, expect, k->def, k->help);
    }
}

const char *dd2_config_diff(const dd2_config *a, const dd2_config *b) {
    char va[CFG_TEXT_MAX], vb[CFG_TEXT_MAX];
    for (size_t i = 0; i < dd2_cfg_schema_len; i++) {
        format_value(a, &dd2_cfg_schema[i], va, sizeof va);
        format_value(b, &dd2_cfg_schema[i], vb, sizeof vb);
        if (strcmp(va, vb)) return dd2_cfg_schema[i].path;
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* schema self-check */

/* Path syntax: 2..CFG_MAX_DEPTH components of [a-z0-9_], none empty. */
static int path_ok(const char *path) {
    const char *parts[CFG_MAX_DEPTH];
    size_t lens[CFG_MAX_DEPTH];
    if (strlen(path) >= CFG_KEYPATH_MAX) return 0;
    size_t n = split_path(path, parts, lens);
    if (n < 2 || parts[n - 1][lens[n - 1]]) return 0;
    for (size_t i = 0; i < n; i++)
        if (!lens[i] || strspn(parts[i], "abcdefghijklmnopqrstuvwxyz0123456789_") < lens[i]) return 0;
    return 1;
}

/* 1 when every section containing key i has its keys in one run of the table. */
static int sections_contiguous(size_t i) {
    const char *path = dd2_cfg_schema[i].path;
    char section[CFG_KEYPATH_MAX];
    for (const char *dot = strchr(path, '.'); dot && i > 0; dot = strchr(dot + 1, '.')) {
        snprintf(section, sizeof section, "%.*s", (int)(dot - path), path);
        if (in_section(dd2_cfg_schema[i - 1].path, section)) continue;
        for (size_t j = 0; j + 1 < i; j++)
            if (in_section(dd2_cfg_schema[j].path, section)) return 0;
    }
    return 1;
}

static int key_ok(const dd2_cfg_key *k, const char **why) {
    *why = "bad path (2+ components of [a-z0-9_])";
    if (!path_ok(k->path)) return 0;
    *why = "also a section";
    if (is_section(k->path)) return 0;
    *why = "field outside dd2_config, or no default/help";
    if (k->offset + k->size > sizeof(dd2_config) || !k->def || !k->help || !k->help[0]) return 0;
    dd2_cfg_type t = element_type(k);
    *why = "bad range (min > max, or an integer bound outside int)";
    if ((t == DD2_CFG_INT || t == DD2_CFG_FLOAT) && !(k->min <= k->max)) return 0;
    if (t == DD2_CFG_INT && !(k->min >= INT_MIN && k->max <= INT_MAX)) return 0;
    switch (k->type) {
    case DD2_CFG_STRING:
        *why = "string capacity below 2 or minimum length above it";
        return k->size >= 2 && k->min < (double)k->size;
    case DD2_CFG_ENUM:
        *why = "enum without values, or a value name not of [a-z0-9+_-]";
        if (!k->enum_values || !k->enum_values[0]) return 0;
        for (size_t i = 0; k->enum_values[i]; i++)
            if (strspn(k->enum_values[i], "abcdefghijklmnopqrstuvwxyz0123456789+_-") != strlen(k->enum_values[i]))
                return 0;
        return 1;
    case DD2_CFG_INT_LIST:
    case DD2_CFG_FLOAT_LIST:
        *why = "list length limits outside [0, DD2_CFG_LIST_MAX]";
        return k->min_len >= 0 && k->min_len <= k->max_len && k->max_len <= DD2_CFG_LIST_MAX;
    default:
        return 1;
    }
}

int dd2_config_schema_check(dd2_status *st) {
    if (dd2_cfg_schema_len > CFG_MAX_KEYS)
        return DD2_FAIL(st, DD2_ERR_RUNTIME, "schema has %zu keys; raise CFG_MAX_KEYS (%d)", dd2_cfg_schema_len, CFG_MAX_KEYS);
    for (size_t i = 0; i < dd2_cfg_schema_len; i++) {
        const dd2_cfg_key *k = &dd2_cfg_schema[i];
        const char *why;
        if (!key_ok(k, &why)) return DD2_FAIL(st, DD2_ERR_RUNTIME, "schema: %s: %s", k->path, why);
        if (dd2_config_find(k->path) != k) return DD2_FAIL(st, DD2_ERR_RUNTIME, "schema: %s: listed twice", k->path);
        if (!sections_contiguous(i))
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "schema: %s: its section's keys are not together in the table", k->path);
    }
    for (size_t i = 0; i < dd2_cfg_rules_len; i++)
        if (!dd2_config_find(dd2_cfg_rules[i].a) || !dd2_config_find(dd2_cfg_rules[i].b))
            return DD2_FAIL(st, DD2_ERR_RUNTIME, "schema: rule %zu names an unknown key", i);
    dd2_config cfg;
    DD2_TRY(defaults_st(&cfg, st));
    return dd2_config_check(&cfg, st);
}
