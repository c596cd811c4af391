/* envconf.c: environment -> pgbouncer.ini + userlist.txt, for the container entrypoint.
 *
 * Forms accepted (docker.md "The entrypoint"), all at once; they are merged, and two of them
 * defining the same client-side database name is an error:
 *   - every [pgbouncer] setting of config_settings[] as UPPER(name) and PGBOUNCER_UPPER(name);
 *   - one database from parts: DATABASES_HOST, _PORT, _USER, _PASSWORD, _DBNAME, ... and
 *     DB_HOST, DB_PORT, DB_USER, DB_PASSWORD, DB_NAME;
 *   - DATABASE_URL and DATABASE_URLS (postgres://user:pass@host:port/db?key=value);
 *   - DATABASES or DATABASES_RAW: "name = connstring" entries separated by ';' or newlines;
 *   - NAME_FILE for every variable above: the value is read from that file.
 * Every value is validated with the daemon's own parser (config.c) so that a mistake is one
 * line naming the variable, before anything starts.
 */
#include "envconf.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"

/* ---- small helpers ---- */

typedef struct Sb {
	char *s;
	size_t len, cap;
} Sb;

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

static void sb_addn(Sb *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->s = realloc(b->s, cap);
		if (!b->s)
			abort();
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = 0;
}

static void sb_add(Sb *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

static void sb_addf(Sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_addf(Sb *b, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		abort();
	sb_addn(b, s, (size_t)n);
	free(s);
}

/* The builder's string, never NULL; the builder is left empty. */
static char *sb_take(Sb *b)
{
	char *s = b->s ? b->s : xstrdup("");
	memset(b, 0, sizeof(*b));
	return s;
}

static char *str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *str_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	return s;
}

static char *upper(const char *s)
{
	char *u = xstrdup(s);
	for (char *p = u; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	return u;
}

static char *trim_dup(const char *s)
{
	size_t n;
	while (isspace((unsigned char)*s))
		s++;
	n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return xstrndup(s, n);
}

static void wipe_free(char *s)
{
	if (s) {
		memset(s, 0, strlen(s));
		free(s);
	}
}

/* ---- the run's state ---- */

typedef struct Db {
	char *name;           /* client-side name */
	char *source;         /* which variable(s) defined it, for messages */
	char *connstr;        /* the right-hand side of the [databases] line */
	char *connstr_masked;
	char *user;           /* forced server user or NULL */
	char *password;       /* its password or NULL */
} Db;

typedef struct SetVal {
	const Setting *s;
	char *value;
	char *var; /* the variable it came from, or "(entrypoint default)" */
} SetVal;

typedef struct Ctx {
	const EpInput *in;
	const EpIo *io;
	EpResult *res;
	Sb err, warn;
	Config *cf; /* scratch: the settings applied one by one, for validation */
	SetVal *set;
	int n_set;
	Db *dbs;
	int n_dbs;
	char **users_nopw; /* forced users without a password */
	int n_users_nopw;
} Ctx;

static void add_err(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_err(Ctx *c, const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	sb_add(&c->err, s);
	sb_add(&c->err, "\n");
	free(s);
	c->res->n_errors++;
}

static void add_warn(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_warn(Ctx *c, const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		abort();
	va_end(ap);
	sb_add(&c->warn, s);
	sb_add(&c->warn, "\n");
	free(s);
}

/* ---- the environment ---- */

/* The value of name in envp (the last definition wins), or NULL. */
static const char *env_raw(const Ctx *c, const char *name)
{
	size_t n = strlen(name);
	const char *v = NULL;
	if (!c->in->envp)
		return NULL;
	for (char *const *e = c->in->envp; *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			v = *e + n + 1;
	return v;
}

/*
 * Read variable name or name_FILE. 1: set, *val malloc'd (may be empty), *src names where it
 * came from (static or in srcbuf); 0: unset; -1: error recorded. An empty NAME does not
 * conflict with NAME_FILE (compose files often pass "${X:-}").
 */
static int env_value(Ctx *c, const char *name, char **val, char *srcbuf, size_t srclen)
{
	char fname[256], err[256];
	const char *v = env_raw(c, name), *fv;
	snprintf(fname, sizeof(fname), "%s_FILE", name);
	fv = env_raw(c, fname);
	*val = NULL;
	if (fv && *fv) {
		char *text;
		size_t n;
		if (v && *v) {
			add_err(c, "%s and %s are both set: use only one of them", name, fname);
			return -1;
		}
		err[0] = 0;
		text = c->io && c->io->read_file ? c->io->read_file(c->io->arg, fv, err, sizeof(err)) : NULL;
		if (!text) {
			add_err(c, "%s: cannot read %s: %s", fname, fv, err[0] ? err : "no file reader");
			return -1;
		}
		n = strlen(text); /* secrets files usually end with a newline: it is not part of it */
		while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r'))
			text[--n] = 0;
		*val = text;
		snprintf(srcbuf, srclen, "%s", fname);
		return 1;
	}
	if (!v)
		return 0;
	*val = xstrdup(v);
	snprintf(srcbuf, srclen, "%s", name);
	return 1;
}

/* Like env_value, but an empty value counts as unset. */
static int env_nonempty(Ctx *c, const char *name, char **val, char *srcbuf, size_t srclen)
{
	int rc = env_value(c, name, val, srcbuf, srclen);
	if (rc == 1 && !**val) {
		free(*val);
		*val = NULL;
		return 0;
	}
	return rc;
}

int ep_is_secret_var(const char *name)
{
	size_t n = strlen(name);
	static const char *const exact[] = {"DATABASE_URL", "DATABASE_URLS", "DATABASES", "DATABASES_RAW",
					    "AUTH_LDAP_OPTIONS", "PGBOUNCER_AUTH_LDAP_OPTIONS", "PGPASSWORD", NULL};
	for (int i = 0; exact[i]; i++)
		if (strcmp(name, exact[i]) == 0)
			return 1;
	return n >= 8 && strcmp(name + n - 8, "PASSWORD") == 0;
}

/* ---- quoting and masking ---- */

char *ep_quote_connstr_value(const char *v)
{
	Sb b = {0};
	int plain = *v != 0;
	for (const char *p = v; *p && plain; p++)
		if (!isalnum((unsigned char)*p) && !strchr("_.:/@,+*%-", *p))
			plain = 0;
	if (plain)
		return xstrdup(v);
	sb_add(&b, "'");
	for (const char *p = v; *p; p++) {
		if (*p == '\'')
			sb_add(&b, "''");
		else if (*p == '\\')
			sb_add(&b, "\\\\");
		else
			sb_addn(&b, p, 1);
	}
	sb_add(&b, "'");
	return sb_take(&b);
}

/* A [databases] name: bare when simple, else "double quoted" with "" for a quote. */
static char *quote_db_name(const char *name)
{
	Sb b = {0};
	int plain = *name != 0;
	for (const char *p = name; *p && plain; p++)
		if (!isalnum((unsigned char)*p) && !strchr("_.*-$", *p))
			plain = 0;
	if (plain)
		return xstrdup(name);
	sb_add(&b, "\"");
	for (const char *p = name; *p; p++)
		sb_add(&b, *p == '"' ? "\"\"" : (char[]){*p, 0});
	sb_add(&b, "\"");
	return sb_take(&b);
}

/* Mask the password= value in a connection string, keeping everything else as written. */
static char *mask_connstr(const char *s)
{
	Sb b = {0};
	const char *p = s;
	while (*p) {
		const char *start = p, *k, *vstart;
		size_t klen;
		while (isspace((unsigned char)*p))
			p++;
		sb_addn(&b, start, (size_t)(p - start));
		if (!*p)
			break;
		k = p;
		while (*p && *p != '=' && !isspace((unsigned char)*p))
			p++;
		klen = (size_t)(p - k);
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '=') { /* not key=value: copy the rest unchanged */
			sb_add(&b, k);
			break;
		}
		p++;
		while (isspace((unsigned char)*p))
			p++;
		vstart = p;
		if (*p == '\'') {
			for (p++; *p; p++) {
				if (*p == '\\' && p[1])
					p++;
				else if (*p == '\'' && p[1] == '\'')
					p++;
				else if (*p == '\'')
					break;
			}
			if (*p)
				p++;
		} else {
			while (*p && !isspace((unsigned char)*p))
				p++;
		}
		sb_addn(&b, k, (size_t)(vstart - k));
		if (klen == 8 && strncasecmp(k, "password", 8) == 0)
			sb_add(&b, EP_MASK);
		else
			sb_addn(&b, vstart, (size_t)(p - vstart));
	}
	return sb_take(&b);
}

char *ep_mask_ini(const char *text)
{
	Sb b = {0};
	int in_db = 0;
	const char *line = text;
	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		char *l = xstrndup(line, n), *t = trim_dup(l);
		if (t[0] == '[') {
			in_db = strncasecmp(t, "[databases]", 11) == 0;
			sb_add(&b, l);
		} else if (in_db && t[0] && t[0] != ';' && t[0] != '#' && strchr(l, '=')) {
			/* the name may be "quoted" and contain '=': find the '=' after it */
			char *eq = l;
			while (isspace((unsigned char)*eq))
				eq++;
			if (*eq == '"') {
				for (eq++; *eq; eq++)
					if (*eq == '"' && *++eq != '"')
						break;
			}
			eq = strchr(eq, '=');
			if (eq) {
				char *m = mask_connstr(eq + 1);
				sb_addn(&b, l, (size_t)(eq + 1 - l));
				sb_add(&b, m);
				free(m);
			} else {
				sb_add(&b, l);
			}
		} else {
			sb_add(&b, l);
		}
		if (nl)
			sb_add(&b, "\n");
		wipe_free(l);
		free(t);
		line += n + (nl ? 1 : 0);
	}
	return sb_take(&b);
}

char *ep_mask_userlist(const char *text)
{
	Sb b = {0};
	const char *line = text;
	while (*line) {
		const char *nl = strchr(line, '\n'), *p = line;
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		while (p < line + n && isspace((unsigned char)*p))
			p++;
		if (p < line + n && *p == '"') {
			const char *q = p + 1;
			while (q < line + n) {
				if (*q == '"' && (q + 1 >= line + n || q[1] != '"'))
					break;
				q += *q == '"' ? 2 : 1;
			}
			if (q < line + n) {
				sb_addn(&b, line, (size_t)(q + 1 - line));
				sb_add(&b, " \"" EP_MASK "\"");
			} else {
				sb_add(&b, "\"" EP_MASK "\"");
			}
		} else {
			sb_addn(&b, line, n);
		}
		if (nl)
			sb_add(&b, "\n");
		line += n + (nl ? 1 : 0);
	}
	return sb_take(&b);
}

/* ---- validation through the daemon's own parser ---- */

/* Strip the "<path>:<line>: " that config_load_string puts in front of its messages. */
static const char *strip_location(const char *msg, const char *path)
{
	size_t n = strlen(path);
	if (strncmp(msg, path, n) == 0 && msg[n] == ':') {
		const char *p = msg + n + 1;
		while (isdigit((unsigned char)*p))
			p++;
		if (p[0] == ':' && p[1] == ' ')
			return p + 2;
	}
	return msg;
}

#define CHECK_PATH "environment"

/* Parse "[databases]\nname = connstr" with config.c. Returns the loaded Config (caller frees)
 * or NULL with the message, location stripped, in err. */
static Config *load_db_line(const char *qname, const char *connstr, char *err, size_t errlen)
{
	char tmp[1024];
	char *text = str_printf("[databases]\n%s = %s\n", qname, connstr);
	Config *cf = config_load_string(text, CHECK_PATH, NULL, NULL, tmp, sizeof(tmp));
	wipe_free(text);
	if (!cf)
		snprintf(err, errlen, "%s", strip_location(tmp, CHECK_PATH));
	return cf;
}

/* Check one key=value of a connection string; on error records "var: message". */
static int check_db_pair(Ctx *c, const char *var, const char *key, const char *value)
{
	char err[1024];
	char *q, *cs;
	Config *cf;
	if (strpbrk(value, "\r\n")) {
		add_err(c, "%s: the value must be on one line", var);
		return -1;
	}
	q = ep_quote_connstr_value(value);
	cs = str_printf("%s=%s", key, q);
	cf = load_db_line("x", cs, err, sizeof(err));
	wipe_free(q);
	wipe_free(cs);
	if (!cf) {
		add_err(c, "%s: %s", var, err);
		return -1;
	}
	config_free(cf);
	return 0;
}

/* An ini value is read up to a " ;" or " #" outside single quotes (config.c strip_comment). */
static int has_comment(const char *v)
{
	int quoted = 0;
	for (const char *p = v; *p; p++) {
		if (quoted) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '\'')
				quoted = 0;
		} else if (*p == '\'') {
			quoted = 1;
		} else if ((*p == ';' || *p == '#') && p > v && isspace((unsigned char)p[-1])) {
			return 1;
		}
	}
	return 0;
}

/* ---- [pgbouncer] settings ---- */

/* Settings whose value may carry a password (LDAP bind options). */
static int secret_setting(const Setting *s)
{
	return strcmp(s->name, "auth_ldap_options") == 0;
}

/* Replace the value of a secret setting in a message from config.c by EP_MASK. */
static void mask_in(char *msg, size_t len, const Setting *s, const char *value)
{
	Sb b = {0};
	const char *p = msg, *hit;
	size_t vlen = strlen(value);
	if (!secret_setting(s) || vlen == 0)
		return;
	while ((hit = strstr(p, value))) {
		sb_addn(&b, p, (size_t)(hit - p));
		sb_add(&b, EP_MASK);
		p = hit + vlen;
	}
	sb_add(&b, p);
	snprintf(msg, len, "%s", b.s);
	free(b.s);
}

static void set_setting(Ctx *c, const Setting *s, const char *value, const char *var)
{
	char err[1024];
	err[0] = 0;
	if (strpbrk(value, "\r\n")) {
		add_err(c, "%s: the value must be on one line", var);
		return;
	}
	if (has_comment(value)) {
		add_err(c, "%s: the value contains \" ;\" or \" #\", which pgbouncer.ini reads as the start of a comment",
			var);
		return;
	}
	if (config_set(c->cf, s->name, value, err, sizeof(err)) < 0) {
		mask_in(err, sizeof(err), s, value);
		add_err(c, "%s: %s", var, err);
		return;
	}
	if (err[0]) {
		mask_in(err, sizeof(err), s, value);
		add_warn(c, "%s: %s", var, err);
	}
	for (int i = 0; i < c->n_set; i++)
		if (c->set[i].s == s) {
			free(c->set[i].value);
			free(c->set[i].var);
			c->set[i].value = xstrdup(value);
			c->set[i].var = xstrdup(var);
			return;
		}
	c->set = realloc(c->set, (size_t)(c->n_set + 1) * sizeof(SetVal));
	if (!c->set)
		abort();
	c->set[c->n_set].s = s;
	c->set[c->n_set].value = xstrdup(value);
	c->set[c->n_set].var = xstrdup(var);
	c->n_set++;
}

static const SetVal *find_set(const Ctx *c, const char *name)
{
	for (int i = 0; i < c->n_set; i++)
		if (strcmp(c->set[i].s->name, name) == 0)
			return &c->set[i];
	return NULL;
}

/* Unprefixed names that shells and tools set for their own purposes: only the PGBOUNCER_
 * form is read for these. */
static int unprefixed_ignored(const char *upname)
{
	return strcmp(upname, "USER") == 0;
}

static void read_settings(Ctx *c, Sb *ignored)
{
	for (int i = 0; i < config_n_settings; i++) {
		const Setting *s = &config_settings[i];
		char *up = upper(s->name), *pname = str_printf("PGBOUNCER_%s", up);
		char *pv = NULL, *uv = NULL, psrc[300], usrc[300];
		int rp = env_value(c, pname, &pv, psrc, sizeof(psrc));
		int ru = unprefixed_ignored(up) ? 0 : env_value(c, up, &uv, usrc, sizeof(usrc));
		if (rp == 1 || ru == 1) {
			const char *v = rp == 1 ? pv : uv, *src = rp == 1 ? psrc : usrc;
			if (rp == 1 && ru == 1 && strcmp(pv, uv) != 0)
				add_warn(c, "%s overrides %s", psrc, usrc);
			if (ignored) {
				sb_add(ignored, ignored->len ? ", " : "");
				sb_add(ignored, src);
			} else {
				char *t = trim_dup(v);
				set_setting(c, s, t, src);
				free(t);
			}
		}
		wipe_free(pv);
		wipe_free(uv);
		free(up);
		free(pname);
	}
}

/* ---- databases ---- */

static void db_free(Db *d)
{
	free(d->name);
	free(d->source);
	wipe_free(d->connstr);
	free(d->connstr_masked);
	free(d->user);
	wipe_free(d->password);
}

/* Add a database; two definitions of one client-side name are an error. Takes d's strings. */
static void add_db(Ctx *c, Db *d)
{
	for (int i = 0; i < c->n_dbs; i++)
		if (strcmp(c->dbs[i].name, d->name) == 0) {
			add_err(c, "database \"%s\" is defined twice: by %s and by %s", d->name, c->dbs[i].source,
				d->source);
			db_free(d);
			return;
		}
	if (strcmp(d->name, "pgbouncer") == 0) {
		add_err(c, "%s: the database name \"pgbouncer\" is reserved for the admin console", d->source);
		db_free(d);
		return;
	}
	c->dbs = realloc(c->dbs, (size_t)(c->n_dbs + 1) * sizeof(Db));
	if (!c->dbs)
		abort();
	c->dbs[c->n_dbs++] = *d;
}

typedef struct Pair {
	char *key, *value;
} Pair;

typedef struct Pairs {
	Pair *p;
	int n;
} Pairs;

static void pairs_add(Pairs *ps, const char *key, const char *value)
{
	ps->p = realloc(ps->p, (size_t)(ps->n + 1) * sizeof(Pair));
	if (!ps->p)
		abort();
	ps->p[ps->n].key = xstrdup(key);
	ps->p[ps->n].value = xstrdup(value);
	ps->n++;
}

static void pairs_free(Pairs *ps)
{
	for (int i = 0; i < ps->n; i++) {
		free(ps->p[i].key);
		wipe_free(ps->p[i].value);
	}
	free(ps->p);
	memset(ps, 0, sizeof(*ps));
}

static const char *pairs_get(const Pairs *ps, const char *key)
{
	for (int i = 0; i < ps->n; i++)
		if (strcmp(ps->p[i].key, key) == 0)
			return ps->p[i].value;
	return NULL;
}

/* Build a Db from key/value pairs (already validated one by one) and add it. */
static void db_from_pairs(Ctx *c, const char *name, const Pairs *ps, const char *source)
{
	Sb cs = {0}, masked = {0};
	Db d;
	char err[1024];
	char *qname;
	Config *cf;
	memset(&d, 0, sizeof(d));
	for (int i = 0; i < ps->n; i++) {
		char *q = ep_quote_connstr_value(ps->p[i].value);
		sb_addf(&cs, "%s%s=%s", i ? " " : "", ps->p[i].key, q);
		sb_addf(&masked, "%s%s=%s", i ? " " : "", ps->p[i].key,
			strcmp(ps->p[i].key, "password") == 0 ? EP_MASK : q);
		wipe_free(q);
	}
	d.name = xstrdup(name);
	d.source = xstrdup(source);
	d.connstr = sb_take(&cs);
	d.connstr_masked = sb_take(&masked);
	if (pairs_get(ps, "user"))
		d.user = xstrdup(pairs_get(ps, "user"));
	if (pairs_get(ps, "password"))
		d.password = xstrdup(pairs_get(ps, "password"));
	/* the whole line once more, for rules about the combination (e.g. unsupported keys) */
	qname = quote_db_name(name);
	cf = load_db_line(qname, d.connstr, err, sizeof(err));
	free(qname);
	if (!cf) {
		add_err(c, "%s: %s", source, err);
		db_free(&d);
		return;
	}
	config_free(cf);
	add_db(c, &d);
}

typedef struct PartKey {
	const char *suffix;
	const char *key; /* connection-string key; "" = the client-side name */
} PartKey;

static const PartKey databases_parts[] = {
	{"HOST", "host"},
	{"PORT", "port"},
	{"DBNAME", "dbname"},
	{"USER", "user"},
	{"PASSWORD", "password"},
	{"CLIENT_SIDE_DBNAME", ""},
	{"AUTH_USER", "auth_user"},
	{"POOL_SIZE", "pool_size"},
	{"MIN_POOL_SIZE", "min_pool_size"},
	{"RESERVE_POOL", "reserve_pool_size"},
	{"CONNECT_QUERY", "connect_query"},
	{"POOL_MODE", "pool_mode"},
	{"MAX_DB_CONNECTIONS", "max_db_connections"},
	{"CLIENT_ENCODING", "client_encoding"},
	{"DATESTYLE", "datestyle"},
	{"TIMEZONE", "timezone"},
	{NULL, NULL},
};

/* DB_NAME is both the server database and, as in other images, the client-side name. */
static const PartKey db_parts[] = {
	{"HOST", "host"}, {"PORT", "port"}, {"NAME", "dbname"}, {"USER", "user"}, {"PASSWORD", "password"}, {NULL, NULL},
};

static void read_parts(Ctx *c, const char *prefix, const PartKey *parts, int name_from_dbname)
{
	Pairs ps = {0};
	Sb setvars = {0};
	char *name = NULL, *host_var = str_printf("%sHOST", prefix);
	int bad = 0, any = 0;
	for (const PartKey *pk = parts; pk->suffix; pk++) {
		char *var = str_printf("%s%s", prefix, pk->suffix), *val = NULL, src[300];
		int rc = env_nonempty(c, var, &val, src, sizeof(src));
		if (rc < 0)
			bad = 1;
		if (rc == 1) {
			any = 1;
			if (strcmp(pk->suffix, "HOST") != 0) {
				sb_add(&setvars, setvars.len ? ", " : "");
				sb_add(&setvars, src);
			}
			if (!*pk->key) {
				free(name);
				name = xstrdup(val);
			} else if (check_db_pair(c, src, pk->key, val) < 0) {
				bad = 1;
			} else {
				pairs_add(&ps, pk->key, val);
				if (name_from_dbname && strcmp(pk->key, "dbname") == 0) {
					free(name);
					name = xstrdup(val);
				}
			}
		}
		wipe_free(val);
		free(var);
	}
	if (any && !pairs_get(&ps, "host") && !bad) {
		add_err(c, "%s is required when %s %s set", host_var, setvars.s ? setvars.s : "",
			strchr(setvars.s ? setvars.s : "", ',') ? "are" : "is");
		bad = 1;
	}
	if (any && !bad) {
		char *source = str_printf("%s*", prefix);
		db_from_pairs(c, name ? name : "*", &ps, source);
		free(source);
	}
	free(sb_take(&setvars));
	free(name);
	free(host_var);
	pairs_free(&ps);
}

int ep_percent_decode(const char *in, size_t len, char **out)
{
	char *o = xmalloc(len + 1), *w = o;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '%') {
			int hi, lo;
			if (i + 2 >= len) {
				free(o);
				return -1;
			}
			hi = isxdigit((unsigned char)in[i + 1]) ? in[i + 1] : -1;
			lo = isxdigit((unsigned char)in[i + 2]) ? in[i + 2] : -1;
			if (hi < 0 || lo < 0) {
				free(o);
				return -1;
			}
			hi = isdigit(hi) ? hi - '0' : tolower(hi) - 'a' + 10;
			lo = isdigit(lo) ? lo - '0' : tolower(lo) - 'a' + 10;
			*w++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*w++ = in[i];
		}
	}
	*w = 0;
	if (memchr(o, 0, (size_t)(w - o))) { /* %00 */
		free(o);
		return -1;
	}
	*out = o;
	return 0;
}

/* The URL with its password replaced, for messages. */
static char *mask_url(const char *url)
{
	const char *s = strstr(url, "://"), *at, *colon, *end;
	if (!s)
		return xstrdup(url);
	s += 3;
	end = s + strcspn(s, "/?#");
	at = NULL;
	for (const char *p = s; p < end; p++)
		if (*p == '@')
			at = p;
	if (!at)
		return xstrdup(url);
	colon = memchr(s, ':', (size_t)(at - s));
	if (!colon)
		return xstrdup(url);
	return str_printf("%.*s%s%s", (int)(colon + 1 - url), url, EP_MASK, at);
}

/* One postgres://user:pass@host:port/db?key=value URL from var. */
static void read_url(Ctx *c, const char *var, const char *url)
{
	Pairs ps = {0};
	const char *p, *auth_end, *at = NULL, *hp, *path_end;
	char *masked = mask_url(url), *name = NULL;
	char *user = NULL, *pass = NULL, *host = NULL, *port = NULL, *db = NULL;
	int bad = 0;

#define URL_FAIL(...)                                                                                      \
	do {                                                                                               \
		add_err(c, __VA_ARGS__);                                                                   \
		bad = 1;                                                                                   \
		goto out;                                                                                  \
	} while (0)

	if (strncasecmp(url, "postgres://", 11) == 0)
		p = url + 11;
	else if (strncasecmp(url, "postgresql://", 13) == 0)
		p = url + 13;
	else
		URL_FAIL("%s: \"%s\" is not a postgres:// or postgresql:// URL", var, masked);
	auth_end = p + strcspn(p, "/?#");
	for (const char *q = p; q < auth_end; q++)
		if (*q == '@')
			at = q;
	hp = p;
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		const char *uend = colon ? colon : at;
		if (ep_percent_decode(p, (size_t)(uend - p), &user) < 0)
			URL_FAIL("%s: bad percent-encoding in the user name of %s", var, masked);
		if (colon && ep_percent_decode(colon + 1, (size_t)(at - colon - 1), &pass) < 0)
			URL_FAIL("%s: bad percent-encoding in the password of %s", var, masked);
		hp = at + 1;
	}
	if (*hp == '[') { /* [IPv6]:port */
		const char *rb = memchr(hp, ']', (size_t)(auth_end - hp));
		if (!rb)
			URL_FAIL("%s: unterminated [IPv6 address] in %s", var, masked);
		host = xstrndup(hp + 1, (size_t)(rb - hp - 1));
		if (rb + 1 < auth_end) {
			if (rb[1] != ':')
				URL_FAIL("%s: unexpected text after ] in %s", var, masked);
			port = xstrndup(rb + 2, (size_t)(auth_end - rb - 2));
		}
	} else {
		const char *colon = memchr(hp, ':', (size_t)(auth_end - hp));
		const char *hend = colon ? colon : auth_end;
		if (ep_percent_decode(hp, (size_t)(hend - hp), &host) < 0)
			URL_FAIL("%s: bad percent-encoding in the host of %s", var, masked);
		if (colon)
			port = xstrndup(colon + 1, (size_t)(auth_end - colon - 1));
	}
	if (!*host)
		URL_FAIL("%s: no host in %s", var, masked);
	if (port && !*port) {
		free(port);
		port = NULL;
	}
	p = auth_end;
	if (*p == '/') {
		path_end = p + 1 + strcspn(p + 1, "?#");
		if (ep_percent_decode(p + 1, (size_t)(path_end - p - 1), &db) < 0)
			URL_FAIL("%s: bad percent-encoding in the database name of %s", var, masked);
		if (!*db) {
			free(db);
			db = NULL;
		}
		p = path_end;
	}
	pairs_add(&ps, "host", host);
	if (port)
		pairs_add(&ps, "port", port);
	if (db)
		pairs_add(&ps, "dbname", db);
	if (user && *user)
		pairs_add(&ps, "user", user);
	if (pass && *pass)
		pairs_add(&ps, "password", pass);
	if (*p == '?') {
		p++;
		while (*p && *p != '#') {
			const char *amp = p + strcspn(p, "&#"), *eq = memchr(p, '=', (size_t)(amp - p));
			char *k = NULL, *v = NULL;
			if (amp == p) {
				p++;
				continue;
			}
			if (!eq || ep_percent_decode(p, (size_t)(eq - p), &k) < 0 ||
			    ep_percent_decode(eq + 1, (size_t)(amp - eq - 1), &v) < 0) {
				free(k);
				URL_FAIL("%s: bad query parameter \"%.*s\" in %s (expected key=value)", var,
					 (int)(amp - p), p, masked);
			}
			if (strcmp(k, "client_side_dbname") == 0) {
				free(name);
				name = v;
				v = NULL;
			} else if (strcmp(k, "host") == 0 || strcmp(k, "port") == 0 || strcmp(k, "user") == 0 ||
				   strcmp(k, "password") == 0 || strcmp(k, "dbname") == 0) {
				add_err(c, "%s: %s belongs in the URL itself, not in its query: %s", var, k, masked);
				bad = 1;
			} else {
				char *src = str_printf("%s (parameter %s)", var, k);
				if (check_db_pair(c, src, k, v) < 0)
					bad = 1;
				else
					pairs_add(&ps, k, v);
				free(src);
			}
			free(k);
			wipe_free(v);
			p = *amp == '&' ? amp + 1 : amp;
		}
	}
	if (!bad) {
		for (int i = 0; i < ps.n && !bad; i++) {
			char *src = str_printf("%s (%s)", var, ps.p[i].key);
			if (strcmp(ps.p[i].key, "host") == 0 || strcmp(ps.p[i].key, "port") == 0 ||
			    strcmp(ps.p[i].key, "dbname") == 0 || strcmp(ps.p[i].key, "user") == 0 ||
			    strcmp(ps.p[i].key, "password") == 0)
				if (check_db_pair(c, src, ps.p[i].key, ps.p[i].value) < 0)
					bad = 1;
			free(src);
		}
	}
	if (!bad)
		db_from_pairs(c, name ? name : db ? db : "*", &ps, var);
out:
#undef URL_FAIL
	free(masked);
	free(name);
	free(user);
	wipe_free(pass);
	free(host);
	free(port);
	free(db);
	pairs_free(&ps);
}

static void read_urls(Ctx *c)
{
	char *val = NULL, src[300];
	if (env_nonempty(c, "DATABASE_URL", &val, src, sizeof(src)) == 1) {
		char *t = trim_dup(val);
		read_url(c, src, t);
		wipe_free(t);
	}
	wipe_free(val);
	val = NULL;
	if (env_nonempty(c, "DATABASE_URLS", &val, src, sizeof(src)) == 1) {
		int i = 0;
		for (char *p = val; p && *p;) {
			char *comma = strchr(p, ','), *t;
			char *one = comma ? xstrndup(p, (size_t)(comma - p)) : xstrdup(p);
			t = trim_dup(one);
			wipe_free(one);
			i++;
			if (*t) {
				char *s = str_printf("%s (URL %d)", src, i);
				read_url(c, s, t);
				free(s);
			}
			wipe_free(t);
			p = comma ? comma + 1 : NULL;
		}
	}
	wipe_free(val);
}

/* DATABASES / DATABASES_RAW: "name = connstr" entries split on ';' or newlines outside quotes. */
static void read_raw(Ctx *c)
{
	char *val = NULL, *val2 = NULL, src[300], src2[300];
	int r1 = env_nonempty(c, "DATABASES", &val, src, sizeof(src));
	int r2 = env_nonempty(c, "DATABASES_RAW", &val2, src2, sizeof(src2));
	int n = 0;
	if (r1 == 1 && r2 == 1) {
		add_err(c, "%s and %s are both set: they are the same thing, use one", src, src2);
		goto out;
	}
	if (r2 == 1) {
		val = val2;
		val2 = NULL;
		memcpy(src, src2, sizeof(src));
	} else if (r1 != 1) {
		goto out;
	}
	for (const char *p = val; *p;) {
		const char *e = p;
		int sq = 0, dq = 0;
		char *entry, *t, *eq, *name, *source;
		for (; *e; e++) {
			if (sq) {
				if (*e == '\\' && e[1])
					e++;
				else if (*e == '\'')
					sq = 0;
			} else if (dq) {
				if (*e == '"')
					dq = 0;
			} else if (*e == '\'') {
				sq = 1;
			} else if (*e == '"') {
				dq = 1;
			} else if (*e == ';' || *e == '\n' || *e == '\r') {
				break;
			}
		}
		entry = xstrndup(p, (size_t)(e - p));
		p = *e ? e + 1 : e;
		t = trim_dup(entry);
		wipe_free(entry);
		if (!*t) {
			free(t);
			continue;
		}
		n++;
		source = str_printf("%s (entry %d)", src, n);
		/* the name may be "quoted" */
		eq = t;
		if (*eq == '"') {
			for (eq++; *eq; eq++)
				if (*eq == '"' && *++eq != '"')
					break;
		}
		eq = strchr(eq, '=');
		if (!eq) {
			add_err(c, "%s: expected \"name = connection string\"", source);
		} else {
			char *n0 = xstrndup(t, (size_t)(eq - t)), *rawname = trim_dup(n0), err[1024], *cs = trim_dup(eq + 1);
			Config *cf = load_db_line(rawname, cs, err, sizeof(err));
			if (!cf) {
				char *m = mask_connstr(err);
				add_err(c, "%s: %s", source, m);
				free(m);
			} else if (cf->n_databases != 1) {
				add_err(c, "%s: expected \"name = connection string\"", source);
			} else {
				Db d;
				memset(&d, 0, sizeof(d));
				name = xstrdup(cf->databases[0].name);
				d.name = name;
				d.source = source;
				source = NULL;
				d.connstr = xstrdup(cs);
				d.connstr_masked = mask_connstr(cs);
				if (cf->databases[0].user)
					d.user = xstrdup(cf->databases[0].user);
				if (cf->databases[0].password)
					d.password = xstrdup(cf->databases[0].password);
				add_db(c, &d);
			}
			config_free(cf);
			free(n0);
			free(rawname);
			wipe_free(cs);
		}
		free(source);
		wipe_free(t);
	}
out:
	wipe_free(val);
	wipe_free(val2);
}

/* DATABASES_FOO or DB_FOO that no form knows: probably a typo. Warned, not fatal: DB_* names
 * are common in application env files shared with other containers. */
static void warn_unknown(Ctx *c)
{
	static const char *const extra[] = {"DATABASES", "DATABASES_RAW", NULL};
	if (!c->in->envp)
		return;
	for (char *const *e = c->in->envp; *e; e++) {
		const char *eq = strchr(*e, '=');
		const PartKey *parts = NULL;
		size_t plen = 0, n;
		int known = 0;
		char *name;
		if (!eq)
			continue;
		if (strncmp(*e, "DATABASES_", 10) == 0) {
			parts = databases_parts;
			plen = 10;
		} else if (strncmp(*e, "DB_", 3) == 0) {
			parts = db_parts;
			plen = 3;
		} else {
			continue;
		}
		name = xstrndup(*e, (size_t)(eq - *e));
		n = strlen(name);
		if (n > 5 && strcmp(name + n - 5, "_FILE") == 0)
			name[n - 5] = 0;
		for (int i = 0; extra[i]; i++)
			known |= strcmp(name, extra[i]) == 0;
		for (const PartKey *pk = parts; pk->suffix && !known; pk++)
			known |= strcmp(name + plen, pk->suffix) == 0;
		if (!known)
			add_warn(c, "unknown variable %.*s ignored", (int)(eq - *e), *e);
		free(name);
	}
}

/* ---- users ---- */

static void add_user(Ctx *c, const Db *d)
{
	EpResult *r = c->res;
	if (!d->user)
		return;
	if (!d->password) {
		for (int i = 0; i < c->n_users_nopw; i++)
			if (strcmp(c->users_nopw[i], d->user) == 0)
				return;
		c->users_nopw = realloc(c->users_nopw, (size_t)(c->n_users_nopw + 1) * sizeof(char *));
		if (!c->users_nopw)
			abort();
		c->users_nopw[c->n_users_nopw++] = xstrdup(d->user);
		return;
	}
	for (int i = 0; i < r->n_users; i++)
		if (strcmp(r->users[i].name, d->user) == 0) {
			if (strcmp(r->users[i].password, d->password) != 0)
				add_err(c, "user \"%s\" is given two different passwords (in %s and in an earlier form)",
					d->user, d->source);
			return;
		}
	r->users = realloc(r->users, (size_t)(r->n_users + 1) * sizeof(EpUser));
	if (!r->users)
		abort();
	r->users[r->n_users].name = xstrdup(d->user);
	r->users[r->n_users].password = xstrdup(d->password);
	r->n_users++;
}

/* A userlist field: "..." with "" for a quote. */
static void add_quoted(Sb *b, const char *s)
{
	sb_add(b, "\"");
	for (; *s; s++)
		sb_add(b, *s == '"' ? "\"\"" : (char[]){*s, 0});
	sb_add(b, "\"");
}

static void build_userlist(Ctx *c, int auth_type, int iterations)
{
	EpResult *r = c->res;
	Sb ul = {0}, um = {0};
	int need_pw = auth_type != AUTH_TYPE_TRUST && auth_type != AUTH_TYPE_ANY && auth_type != AUTH_TYPE_CERT &&
		      auth_type != AUTH_TYPE_LDAP && auth_type != AUTH_TYPE_PAM;
	const char *hdr = EP_MARKER " at every container start from the environment; mount your own file here to "
				    "keep it as-is.\n";
	if (!r->auth_file)
		return;
	if (c->io && c->io->file_is_mounted && c->io->file_is_mounted(c->io->arg, r->auth_file))
		return; /* mounted files win */
	for (int i = 0; i < c->n_users_nopw; i++)
		if (need_pw) {
			add_err(c, "user \"%s\" has no password, and auth_type %s needs one: set DATABASES_PASSWORD "
				   "(docker-compose-pgbouncer.yml takes it from POSTGRES_PASSWORD in .env) or "
				   "DATABASES_PASSWORD_FILE, or mount a userlist.txt at %s",
				c->users_nopw[i], config_auth_type_name(auth_type), r->auth_file);
			return;
		}
	if (r->n_users == 0 && c->n_users_nopw == 0) {
		if (auth_type != AUTH_TYPE_ANY && auth_type != AUTH_TYPE_CERT && auth_type != AUTH_TYPE_LDAP &&
		    auth_type != AUTH_TYPE_PAM)
			add_err(c, "no user to log in with: set DATABASES_USER and DATABASES_PASSWORD (or a user in "
				   "DATABASE_URL), or mount a userlist.txt at %s",
				r->auth_file);
		return;
	}
	sb_add(&ul, hdr);
	sb_add(&um, hdr);
	for (int i = 0; i < r->n_users; i++) {
		const EpUser *u = &r->users[i];
		char md5[36], *secret = NULL;
		unsigned char salt[16];
		if (strlen(u->name) > 63) {
			add_err(c, "user name \"%.20s...\" is longer than 63 bytes", u->name);
			continue;
		}
		switch (auth_type) {
		case AUTH_TYPE_PLAIN:
			secret = xstrdup(u->password);
			break;
		case AUTH_TYPE_TRUST:
		case AUTH_TYPE_ANY:
			secret = xstrdup("");
			break;
		case AUTH_TYPE_SCRAM_SHA_256:
			if (!c->io || !c->io->random || c->io->random(c->io->arg, salt, sizeof(salt)) != 0) {
				add_err(c, "cannot get random bytes for a SCRAM salt");
				continue;
			}
			secret = ep_scram_secret(u->password, salt, sizeof(salt), iterations);
			if (!secret) {
				add_err(c, "cannot compute the SCRAM secret of user \"%s\"", u->name);
				continue;
			}
			break;
		default: /* md5, hba and the rest: md5 works for md5 and for SCRAM clients' md5 fallback */
			ep_md5_secret(u->name, u->password, md5);
			secret = xstrdup(md5);
			break;
		}
		if (strlen(secret) > 1024) {
			add_err(c, "the password of user \"%s\" is longer than 1024 bytes", u->name);
			wipe_free(secret);
			continue;
		}
		add_quoted(&ul, u->name);
		sb_add(&ul, " ");
		add_quoted(&ul, secret);
		sb_add(&ul, "\n");
		add_quoted(&um, u->name);
		sb_add(&um, " \"" EP_MASK "\"\n");
		wipe_free(secret);
	}
	for (int i = 0; i < c->n_users_nopw; i++) {
		int dup = 0;
		for (int j = 0; j < r->n_users; j++)
			dup |= strcmp(r->users[j].name, c->users_nopw[i]) == 0;
		if (dup)
			continue;
		add_quoted(&ul, c->users_nopw[i]);
		sb_add(&ul, " \"\"\n");
		add_quoted(&um, c->users_nopw[i]);
		sb_add(&um, " \"\"\n");
	}
	r->userlist = sb_take(&ul);
	r->userlist_masked = sb_take(&um);
}

/* ---- the whole run ---- */

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

static void build_ini(Ctx *c)
{
	EpResult *r = c->res;
	Sb ini = {0}, m = {0};
	const char *hdr = EP_MARKER " at every container start from the environment: do not edit.\n"
				    "; To use your own file as-is, mount it here instead.\n";
	sb_add(&ini, hdr);
	sb_add(&m, hdr);
	sb_add(&ini, "\n[databases]\n");
	sb_add(&m, "\n[databases]\n");
	for (int i = 0; i < c->n_dbs; i++) {
		char *q = quote_db_name(c->dbs[i].name);
		sb_addf(&ini, "%s = %s\n", q, c->dbs[i].connstr);
		sb_addf(&m, "%s = %s\n", q, c->dbs[i].connstr_masked);
		free(q);
	}
	sb_add(&ini, "\n[pgbouncer]\n");
	sb_add(&m, "\n[pgbouncer]\n");
	for (int i = 0; i < config_n_settings; i++) {
		const SetVal *sv = find_set(c, config_settings[i].name);
		if (!sv)
			continue;
		sb_addf(&ini, "%s = %s\n", sv->s->name, sv->value);
		sb_addf(&m, "%s = %s\n", sv->s->name,
			secret_setting(sv->s) ? EP_MASK : sv->value);
	}
	r->ini = sb_take(&ini);
	r->ini_masked = sb_take(&m);
}

int ep_generate(const EpInput *in, const EpIo *io, EpResult *res)
{
	Ctx c;
	Sb ignored = {0};
	Config *eff = NULL;
	char err[1024];

	memset(res, 0, sizeof(*res));
	memset(&c, 0, sizeof(c));
	c.in = in;
	c.io = io;
	c.res = res;
	c.cf = config_new_defaults();

	/* settings: into the generated ini, or noted as ignored next to a mounted one */
	read_settings(&c, in->mounted_config ? &ignored : NULL);
	if (in->mounted_config) {
		eff = config_load_string(in->mounted_config, in->config_path, NULL, NULL, err, sizeof(err));
		if (!eff)
			add_err(&c, "mounted %s: %s", in->config_path, err);
		if (ignored.len)
			add_warn(&c, "%s is mounted and used as-is: ignoring %s", in->config_path, ignored.s);
	}

	/* databases, in every form; with a mounted ini they only feed the userlist */
	read_parts(&c, "DATABASES_", databases_parts, 0);
	read_parts(&c, "DB_", db_parts, 1);
	read_urls(&c);
	read_raw(&c);
	warn_unknown(&c);
	for (int i = 0; i < c.n_dbs; i++)
		add_user(&c, &c.dbs[i]);

	if (!in->mounted_config) {
		char *dir = dir_of(in->config_path ? in->config_path : "/etc/pgbouncer/pgbouncer.ini");
		if (c.n_dbs == 0 && !res->n_errors)
			add_err(&c, "no database configured: set DATABASES_HOST (or DB_HOST, DATABASE_URL, "
				    "DATABASE_URLS, DATABASES), or mount a pgbouncer.ini at %s",
				in->config_path);
		/* the entrypoint's defaults for a container */
		if (!find_set(&c, "listen_addr"))
			set_setting(&c, config_find_setting("listen_addr"), "0.0.0.0", "(container default)");
		if (!find_set(&c, "auth_file")) {
			char *af = str_printf("%s/userlist.txt", dir);
			set_setting(&c, config_find_setting("auth_file"), af, "(container default)");
			free(af);
		}
		if (!find_set(&c, "auth_type"))
			set_setting(&c, config_find_setting("auth_type"), config_auth_type_name(c.cf->auth_type),
				    "(default)");
		if (!find_set(&c, "admin_users")) {
			Sb a = {0};
			for (int i = 0; i < res->n_users; i++) {
				sb_add(&a, a.len ? "," : "");
				sb_add(&a, res->users[i].name);
			}
			for (int i = 0; i < c.n_users_nopw; i++) {
				int dup = 0;
				for (int j = 0; j < res->n_users; j++)
					dup |= strcmp(res->users[j].name, c.users_nopw[i]) == 0;
				if (!dup) {
					sb_add(&a, a.len ? "," : "");
					sb_add(&a, c.users_nopw[i]);
				}
			}
			if (a.len)
				set_setting(&c, config_find_setting("admin_users"), a.s, "(container default)");
			free(sb_take(&a));
		}
		free(dir);
		if (!res->n_errors) {
			build_ini(&c);
			eff = config_load_string(res->ini, in->config_path, NULL, NULL, err, sizeof(err));
			if (!eff)
				add_err(&c, "generated configuration rejected: %s", err);
		}
	}

	if (eff) {
		res->auth_file = eff->auth_file ? xstrdup(eff->auth_file) : NULL;
		res->listen_addr = eff->listen_addr ? xstrdup(eff->listen_addr) : NULL;
		res->listen_port = eff->listen_port;
		res->unix_socket_dir = eff->unix_socket_dir ? xstrdup(eff->unix_socket_dir) : NULL;
		if (!res->n_errors)
			build_userlist(&c, eff->auth_type, eff->scram_iterations);
		config_free(eff);
	}

	if (res->n_errors) {
		wipe_free(res->ini);
		free(res->ini_masked);
		wipe_free(res->userlist);
		free(res->userlist_masked);
		res->ini = res->ini_masked = res->userlist = res->userlist_masked = NULL;
	}
	res->errors = sb_take(&c.err);
	res->warnings = sb_take(&c.warn);
	free(sb_take(&ignored));
	config_free(c.cf);
	for (int i = 0; i < c.n_set; i++) {
		wipe_free(c.set[i].value);
		free(c.set[i].var);
	}
	free(c.set);
	for (int i = 0; i < c.n_dbs; i++)
		db_free(&c.dbs[i]);
	free(c.dbs);
	for (int i = 0; i < c.n_users_nopw; i++)
		free(c.users_nopw[i]);
	free(c.users_nopw);
	return res->n_errors ? -1 : 0;
}

void ep_result_free(EpResult *res)
{
	wipe_free(res->ini);
	free(res->ini_masked);
	wipe_free(res->userlist);
	free(res->userlist_masked);
	free(res->auth_file);
	free(res->listen_addr);
	free(res->unix_socket_dir);
	for (int i = 0; i < res->n_users; i++) {
		free(res->users[i].name);
		wipe_free(res->users[i].password);
	}
	free(res->users);
	free(res->warnings);
	free(res->errors);
	memset(res, 0, sizeof(*res));
}

/* ---- --help ---- */

static const char *type_text(const Setting *s, char *buf, size_t len)
{
	switch (s->type) {
	case SETTING_INT:
		return "integer";
	case SETTING_BOOL:
		return "boolean (0/1)";
	case SETTING_USEC:
		return "seconds";
	case SETTING_MODE:
		return "octal mode";
	case SETTING_ENUM:
	case SETTING_STR:
		if (s->enum_names) {
			size_t used = 0;
			buf[0] = 0;
			for (int i = 0; s->enum_names[i] && used < len; i++)
				used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "|" : "", s->enum_names[i]);
			return buf;
		}
		return "text";
	}
	return "text";
}

/* Where the container's default differs from the daemon's. */
static const char *container_default(const char *name)
{
	if (strcmp(name, "listen_addr") == 0)
		return "0.0.0.0";
	if (strcmp(name, "auth_file") == 0)
		return "<config dir>/userlist.txt";
	if (strcmp(name, "admin_users") == 0)
		return "the database user(s)";
	return NULL;
}

static const struct {
	const char *var, *meaning;
} db_vars[] = {
	{"DATABASES_HOST", "PostgreSQL host (required for this form); host.docker.internal reaches the Docker host"},
	{"DATABASES_PORT", "PostgreSQL port (5432)"},
	{"DATABASES_USER", "server user; forced for every client, is written to userlist.txt and is an admin"},
	{"DATABASES_PASSWORD", "its password (goes to the connection string and, hashed, to userlist.txt)"},
	{"DATABASES_DBNAME", "server database (default: the name the client asks for)"},
	{"DATABASES_CLIENT_SIDE_DBNAME", "the name clients connect to (default *: any name)"},
	{"DATABASES_AUTH_USER", "per-database auth_user"},
	{"DATABASES_POOL_SIZE", "per-database pool_size"},
	{"DATABASES_MIN_POOL_SIZE", "per-database min_pool_size"},
	{"DATABASES_RESERVE_POOL", "per-database reserve_pool_size"},
	{"DATABASES_CONNECT_QUERY", "per-database connect_query"},
	{"DATABASES_POOL_MODE", "per-database pool_mode"},
	{"DATABASES_MAX_DB_CONNECTIONS", "per-database max_db_connections"},
	{"DATABASES_CLIENT_ENCODING", "per-database client_encoding"},
	{"DATABASES_DATESTYLE", "per-database datestyle"},
	{"DATABASES_TIMEZONE", "per-database timezone"},
	{"DB_HOST, DB_PORT, DB_USER, DB_PASSWORD, DB_NAME",
	 "the same database from parts, in the other common naming; DB_NAME is also the client-side name (default *)"},
	{"DATABASE_URL", "postgres://user:pass@host:port/db?key=value (user and password percent-decoded; "
			 "query keys are connection-string keys, plus client_side_dbname)"},
	{"DATABASE_URLS", "several such URLs separated by commas"},
	{"DATABASES (or DATABASES_RAW)", "full [databases] entries \"name = host=... port=...\" separated by ; or newlines"},
	{NULL, NULL},
};

static const struct {
	const char *var, *meaning;
} ep_vars[] = {
	{"TIDEPOOL_CONFIG", "path of pgbouncer.ini (default /etc/pgbouncer/pgbouncer.ini); an existing file that "
			    "tidepool-entrypoint did not write is used as-is"},
	{"TIDEPOOL_DAEMON", "the daemon to exec (default /usr/local/bin/tidepool)"},
	{"TIDEPOOL_PGPASS", "1 (default): write ~/.pgpass so that psql inside the container logs in without a "
			    "prompt; 0: do not"},
	{"TIDEPOOL_RUN_AS", "when started as root: the user the daemon switches to (default tidepool)"},
	{NULL, NULL},
};

char *ep_help_text(int markdown)
{
	Sb b = {0};
	char tbuf[256];
	if (!markdown) {
		sb_add(&b, "Usage: tidepool-entrypoint [--help | --print-config | --healthcheck | --version]\n"
			   "       tidepool-entrypoint [DAEMON-OPTION]...   (e.g. -v: passed to tidepool)\n"
			   "       tidepool-entrypoint COMMAND [ARG]...     (runs COMMAND instead, e.g. sh)\n\n"
			   "Writes pgbouncer.ini and userlist.txt (mode 0600) from the environment, then execs the\n"
			   "tidepool daemon. Files mounted by the user are used as-is. Every variable below also has\n"
			   "a NAME_FILE form that reads the value from a file (Docker/Kubernetes secrets); setting both\n"
			   "is an error. Passwords are never printed.\n\n"
			   "  --print-config  print the effective configuration (passwords masked) and exit\n"
			   "  --healthcheck   exit 0 if the pooler answers on its port (needs no password)\n\n");
		sb_add(&b, "Entrypoint:\n");
		for (int i = 0; ep_vars[i].var; i++)
			sb_addf(&b, "  %s\n      %s\n", ep_vars[i].var, ep_vars[i].meaning);
		sb_add(&b, "\nDatabases (any combination; one client-side name may be defined once):\n");
		for (int i = 0; db_vars[i].var; i++)
			sb_addf(&b, "  %s\n      %s\n", db_vars[i].var, db_vars[i].meaning);
		sb_add(&b, "\nSettings: NAME or PGBOUNCER_NAME (the prefixed one wins). "
			   "Unset = the daemon's default.\n");
	} else {
		sb_add(&b, "| variable | meaning |\n|---|---|\n");
		for (int i = 0; ep_vars[i].var; i++)
			sb_addf(&b, "| `%s` | %s |\n", ep_vars[i].var, ep_vars[i].meaning);
		for (int i = 0; db_vars[i].var; i++)
			sb_addf(&b, "| `%s` | %s |\n", db_vars[i].var, db_vars[i].meaning);
		sb_add(&b, "\n| setting variable (also `PGBOUNCER_` + it) | type | default | meaning |\n"
			   "|---|---|---|---|\n");
	}
	for (int i = 0; i < config_n_settings; i++) {
		const Setting *s = &config_settings[i];
		char *up = upper(s->name);
		const char *cdef = container_default(s->name);
		const char *def = cdef ? cdef : s->default_value ? (*s->default_value ? s->default_value : "(empty)")
								 : "(unset)";
		const char *note = s->support == SUPPORT_NO_ERROR ? " [not supported yet: only the default]"
				   : s->support == SUPPORT_NO_WARN ? " [not supported yet: ignored with a warning]"
								   : "";
		if (markdown)
			sb_addf(&b, "| `%s`%s | %s | `%s` | %s%s |\n", up,
				unprefixed_ignored(up) ? " (only as `PGBOUNCER_USER`)" : "", type_text(s, tbuf, sizeof(tbuf)),
				def, s->help, note);
		else
			sb_addf(&b, "  %-28s %s, default %s%s\n      %s%s\n", up, type_text(s, tbuf, sizeof(tbuf)), def,
				unprefixed_ignored(up) ? " (only PGBOUNCER_USER: USER is the shell's)" : "", s->help,
				note);
		free(up);
	}
	return sb_take(&b);
}
