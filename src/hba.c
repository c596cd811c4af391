/* hba.c: pg_hba.conf-style rules for auth_type = hba (see hba.h).
 *
 * Supported as PgBouncer documents it: record types local, host, hostssl, hostnossl; database
 * column all, sameuser, replication, names, quoted names, comma lists and @file; user column
 * all, names and @file (not +group); addresses all, IPv4/IPv6 in CIDR or address-and-mask
 * form; methods trust, reject, md5, scram-sha-256, password, cert, peer; options key=value
 * (only map=, for cert and peer: the auth_ident_file map that says which certificate or OS
 * user may log in as which user; without it the names must be equal). Anything else is an
 * error naming file and line: a rule that cannot be read could be the one meant to reject
 * someone, so the whole file is refused. The auth_ident_file is read by the same tokenizer. */
#include "hba.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct Item {
	char *text;
	bool quoted;
} Item;

typedef struct Field {
	int n;
	Item *items;
} Field;

#define MAX_FIELDS 32

typedef struct Parser {
	const char *path;
	int line;
	HbaReadFn read;
	void *arg;
	char *err;
	size_t errlen;
} Parser;

__attribute__((format(printf, 2, 3))) static int fail(Parser *ps, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ps->err && ps->errlen)
		snprintf(ps->err, ps->errlen, "%s:%d: %s", ps->path, ps->line, msg);
	return -1;
}

static void fields_free(Field *f, int n)
{
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < f[i].n; k++)
			free(f[i].items[k].text);
		free(f[i].items);
		f[i].n = 0;
		f[i].items = NULL;
	}
}

static int add_item(Field *f, const char *text, size_t len, bool quoted)
{
	Item *ni = realloc(f->items, (size_t)(f->n + 1) * sizeof(Item));
	if (!ni)
		return -1;
	f->items = ni;
	char *t = malloc(len + 1);
	if (!t)
		return -1;
	memcpy(t, text, len);
	t[len] = 0;
	f->items[f->n].text = t;
	f->items[f->n].quoted = quoted;
	f->n++;
	return 0;
}

/* Split one line into fields of comma-separated items. "" inside quotes is a quote; a comma
 * (outside quotes) continues the field past whitespace around it; # starts a comment. */
static int tokenize(Parser *ps, const char *s, Field *fields, int *nfields)
{
	char buf[HBA_MAX_LINE];
	int nf = 0;
	*nfields = 0;
	for (;;) {
		while (*s == ' ' || *s == '\t' || *s == '\r')
			s++;
		if (!*s || *s == '#')
			break;
		if (nf == MAX_FIELDS)
			return fail(ps, "too many fields");
		Field *f = &fields[nf++];
		*nfields = nf;
		for (;;) { /* items of this field */
			size_t o = 0;
			bool quoted = false, in_quote = false;
			while (*s && (in_quote ||
			              (*s != ' ' && *s != '\t' && *s != '\r' && *s != ',' && *s != '#'))) {
				if (*s == '"') {
					if (in_quote && s[1] == '"') {
						buf[o++] = '"';
						s += 2;
						continue;
					}
					in_quote = !in_quote;
					quoted = true;
					s++;
					continue;
				}
				if (o + 1 >= sizeof(buf))
					return fail(ps, "line too long");
				buf[o++] = *s++;
			}
			if (in_quote)
				return fail(ps, "unterminated quoted string");
			if (add_item(f, buf, o, quoted) < 0)
				return fail(ps, "out of memory");
			/* whitespace before the comma too: "a , b" is one list */
			const char *after = s;
			while (*after == ' ' || *after == '\t' || *after == '\r')
				after++;
			if (*after != ',')
				break;
			s = after + 1;
			while (*s == ' ' || *s == '\t' || *s == '\r')
				s++;
		}
	}
	return 0;
}

static int add_name(Parser *ps, HbaNames *hn, const char *name)
{
	char **nn = realloc(hn->names, (size_t)(hn->n + 1) * sizeof(char *));
	if (!nn)
		return fail(ps, "out of memory");
	hn->names = nn;
	if (!(hn->names[hn->n] = strdup(name)))
		return fail(ps, "out of memory");
	hn->n++;
	return 0;
}

/* Names from an @file: separated by whitespace or commas, "quoted" allowed, # comments. */
static int include_names(Parser *ps, HbaNames *hn, const char *file)
{
	char path[4096], rerr[256] = "";
	const char *slash = strrchr(ps->path, '/');
	if (!*file)
		return fail(ps, "empty file name after @");
	if (file[0] == '/' || !slash)
		snprintf(path, sizeof(path), "%s", file);
	else
		snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - ps->path), ps->path, file);
	char *text = ps->read ? ps->read(ps->arg, path, rerr, sizeof(rerr)) : NULL;
	if (!text)
		return fail(ps, "cannot read included file %s%s%s", path, rerr[0] ? ": " : "", rerr);
	int rc = 0;
	char *line = text, *next;
	for (; line && rc == 0; line = next) {
		if ((next = strchr(line, '\n')))
			*next++ = 0;
		Field fields[MAX_FIELDS];
		int nf = 0;
		memset(fields, 0, sizeof(fields));
		rc = tokenize(ps, line, fields, &nf);
		for (int i = 0; i < nf && rc == 0; i++)
			for (int k = 0; k < fields[i].n && rc == 0; k++) {
				const Item *it = &fields[i].items[k];
				if (!it->text[0] && !it->quoted)
					continue;
				if (!it->quoted && it->text[0] == '@')
					rc = fail(ps, "nested @file in %s is not supported", path);
				else
					rc = add_name(ps, hn, it->text);
			}
		fields_free(fields, nf);
	}
	free(text);
	return rc;
}

static int parse_names(Parser *ps, const Field *f, HbaNames *hn, bool is_db)
{
	for (int i = 0; i < f->n; i++) {
		const Item *it = &f->items[i];
		const char *t = it->text;
		if (!*t && !it->quoted)
			return fail(ps, "empty name in a %s list", is_db ? "database" : "user");
		if (it->quoted) {
			if (add_name(ps, hn, t) < 0)
				return -1;
		} else if (strcmp(t, "all") == 0) {
			hn->all = true;
		} else if (is_db && strcmp(t, "sameuser") == 0) {
			hn->sameuser = true;
		} else if (is_db && strcmp(t, "replication") == 0) {
			hn->replication = true;
		} else if (is_db && (strcmp(t, "samerole") == 0 || strcmp(t, "samegroup") == 0)) {
			return fail(ps, "\"%s\" is not supported", t);
		} else if (!is_db && t[0] == '+') {
			return fail(ps, "group membership (%s) is not supported", t);
		} else if (t[0] == '@') {
			if (include_names(ps, hn, t + 1) < 0)
				return -1;
		} else if (add_name(ps, hn, t) < 0) {
			return -1;
		}
	}
	return 0;
}

static const struct {
	const char *name;
	HbaMethod method;
} methods[] = {{"trust", HBA_TRUST},         {"reject", HBA_REJECT},     {"md5", HBA_MD5},
               {"scram-sha-256", HBA_SCRAM}, {"password", HBA_PASSWORD}, {"cert", HBA_CERT},
               {"peer", HBA_PEER},           {NULL, HBA_REJECT}};

const char *hba_method_name(HbaMethod m)
{
	for (int i = 0; methods[i].name; i++)
		if (methods[i].method == m)
			return methods[i].name;
	return "?";
}

/* A single-item field as a plain word (no list, no quotes). */
static const char *word(const Field *f)
{
	return f->n == 1 && !f->items[0].quoted ? f->items[0].text : NULL;
}

static int parse_address(Parser *ps, HbaRule *r, const Field *fields, int nf, int *idx)
{
	const char *a = word(&fields[*idx]);
	char ip[64];
	int bits = -1;
	if (!a)
		return fail(ps, "invalid address field");
	if (strcmp(a, "all") == 0) {
		r->addr_all = true;
		(*idx)++;
		return 0;
	}
	if (strcmp(a, "samehost") == 0 || strcmp(a, "samenet") == 0)
		return fail(ps, "\"%s\" is not supported", a);
	const char *slash = strchr(a, '/');
	size_t iplen = slash ? (size_t)(slash - a) : strlen(a);
	if (iplen >= sizeof(ip))
		return fail(ps, "invalid IP address \"%s\"", a);
	memcpy(ip, a, iplen);
	ip[iplen] = 0;
	if (inet_pton(AF_INET, ip, r->addr) == 1)
		r->family = AF_INET;
	else if (inet_pton(AF_INET6, ip, r->addr) == 1)
		r->family = AF_INET6;
	else
		return fail(ps, "invalid IP address \"%s\" (host names are not supported)", a);
	int maxbits = r->family == AF_INET ? 32 : 128;
	if (slash) {
		char *end;
		long v;
		errno = 0;
		v = strtol(slash + 1, &end, 10);
		if (!slash[1] || *end || errno || v < 0 || v > maxbits)
			return fail(ps, "invalid CIDR mask in address \"%s\"", a);
		bits = (int)v;
		(*idx)++;
	} else {
		/* address followed by a netmask */
		const char *m = *idx + 1 < nf ? word(&fields[*idx + 1]) : NULL;
		int fam = r->family;
		if (!m || inet_pton(fam, m, r->mask) != 1)
			return fail(ps, "address \"%s\" needs a CIDR mask or a netmask", a);
		(*idx) += 2;
	}
	if (bits >= 0) {
		memset(r->mask, 0, sizeof(r->mask));
		for (int i = 0; i < bits; i++)
			r->mask[i / 8] |= (uint8_t)(0x80 >> (i % 8));
	}
	for (int i = 0; i < 16; i++)
		r->addr[i] &= r->mask[i];
	return 0;
}

static void rule_clear(HbaRule *r)
{
	for (int i = 0; i < r->db.n; i++)
		free(r->db.names[i]);
	free(r->db.names);
	for (int i = 0; i < r->user.n; i++)
		free(r->user.names[i]);
	free(r->user.names);
	free(r->map);
	memset(r, 0, sizeof(*r));
}

/* One non-empty line into r: 0, -1 error. */
static int parse_rule(Parser *ps, Field *fields, int nf, HbaRule *r)
{
	const char *type = word(&fields[0]);
	int i = 3;
	memset(r, 0, sizeof(*r));
	r->line = ps->line;
	if (!type)
		return fail(ps, "invalid connection type");
	if (strcmp(type, "local") == 0)
		r->type = HBA_LOCAL;
	else if (strcmp(type, "host") == 0)
		r->type = HBA_HOST;
	else if (strcmp(type, "hostssl") == 0)
		r->type = HBA_HOSTSSL;
	else if (strcmp(type, "hostnossl") == 0)
		r->type = HBA_HOSTNOSSL;
	else
		return fail(ps, "invalid connection type \"%s\"", type);
	if (nf < (r->type == HBA_LOCAL ? 4 : 5))
		return fail(ps, "end of line before the authentication method");
	if (parse_names(ps, &fields[1], &r->db, true) < 0 || parse_names(ps, &fields[2], &r->user, false) < 0)
		return -1;
	if (r->type != HBA_LOCAL && parse_address(ps, r, fields, nf, &i) < 0)
		return -1;
	if (i >= nf)
		return fail(ps, "end of line before the authentication method");
	const char *m = word(&fields[i]);
	int k;
	for (k = 0; m && methods[k].name && strcmp(methods[k].name, m) != 0; k++)
		;
	if (!m || !methods[k].name)
		return fail(ps, "invalid or unsupported authentication method \"%s\"",
		            fields[i].n ? fields[i].items[0].text : "");
	r->method = methods[k].method;
	if (r->method == HBA_PEER && r->type != HBA_LOCAL)
		return fail(ps, "peer authentication is only supported on local sockets");
	for (i++; i < nf; i++) {
		const char *opt = word(&fields[i]);
		if (!opt || strncmp(opt, "map=", 4) != 0 || !opt[4])
			return fail(ps, "invalid authentication option \"%s\"",
			            fields[i].n ? fields[i].items[0].text : "");
		if (r->method != HBA_CERT && r->method != HBA_PEER)
			return fail(ps, "map= is only for the cert and peer methods");
		free(r->map);
		if (!(r->map = strdup(opt + 4)))
			return fail(ps, "out of memory");
	}
	return 0;
}

/* One tokenized non-empty line of a file (hba rules, ident maps): 0, or -1 with the error set. */
typedef int (*LineFn)(Parser *ps, Field *fields, int nf, void *arg);

/* Tokenize each line of text and hand the non-empty ones to fn: 0, or -1 at the first error. */
static int parse_lines(Parser *ps, const char *text, LineFn fn, void *arg)
{
	const char *line = text ? text : "";
	while (line) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char buf[HBA_MAX_LINE];
		Field fields[MAX_FIELDS];
		int nf = 0, rc;
		ps->line++;
		if (len >= sizeof(buf))
			return fail(ps, "line too long");
		memcpy(buf, line, len);
		buf[len] = 0;
		line = nl ? nl + 1 : NULL;
		if (memchr(buf, 0, len))
			return fail(ps, "NUL byte in line");
		memset(fields, 0, sizeof(fields));
		rc = tokenize(ps, buf, fields, &nf);
		if (rc == 0 && nf > 0)
			rc = fn(ps, fields, nf, arg);
		fields_free(fields, nf);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int add_rule(Parser *ps, Field *fields, int nf, void *arg)
{
	Hba *hba = arg;
	HbaRule r;
	if (hba->n >= HBA_MAX_RULES)
		return fail(ps, "more than %d rules", HBA_MAX_RULES);
	if (parse_rule(ps, fields, nf, &r) < 0) {
		rule_clear(&r);
		return -1;
	}
	HbaRule *nr = realloc(hba->rules, (size_t)(hba->n + 1) * sizeof(HbaRule));
	if (!nr) {
		rule_clear(&r);
		return fail(ps, "out of memory");
	}
	hba->rules = nr;
	hba->rules[hba->n++] = r;
	return 0;
}

Hba *hba_parse(const char *text, const char *path, HbaReadFn read, void *arg, char *err, size_t errlen)
{
	Parser ps = {path ? path : "(hba)", 0, read, arg, err, errlen};
	Hba *hba = calloc(1, sizeof(*hba));
	if (!hba) {
		fail(&ps, "out of memory");
		return NULL;
	}
	if (parse_lines(&ps, text, add_rule, hba) < 0) {
		hba_free(hba);
		return NULL;
	}
	return hba;
}

static char *read_file(void *arg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	size_t len = 0, cap = 4096, n;
	char *buf;
	if (!f) {
		snprintf(err, errlen, "%s", strerror(errno));
		return NULL;
	}
	buf = malloc(cap);
	while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (len + 1 == cap) {
			char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
			if (!nb) {
				free(buf);
				buf = NULL;
				snprintf(err, errlen, "file too large");
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	if (buf && ferror(f)) {
		snprintf(err, errlen, "%s", strerror(errno));
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf)
		buf[len] = 0;
	return buf;
}

Hba *hba_load(const char *path, char *err, size_t errlen)
{
	char rerr[256] = "";
	char *text = read_file(NULL, path, rerr, sizeof(rerr));
	if (!text) {
		snprintf(err, errlen, "cannot read auth_hba_file %s: %s", path, rerr);
		return NULL;
	}
	Hba *hba = hba_parse(text, path, read_file, NULL, err, errlen);
	free(text);
	return hba;
}

void hba_free(Hba *hba)
{
	if (!hba)
		return;
	for (int i = 0; i < hba->n; i++)
		rule_clear(&hba->rules[i]);
	free(hba->rules);
	free(hba);
}

static bool names_match(const HbaNames *hn, const char *name)
{
	if (hn->all)
		return true;
	for (int i = 0; i < hn->n; i++)
		if (strcmp(hn->names[i], name) == 0)
			return true;
	return false;
}

static bool addr_match(const HbaRule *r, const char *addr)
{
	uint8_t a[16];
	if (r->addr_all)
		return true;
	if (!addr)
		return false;
	memset(a, 0, sizeof(a));
	if (r->family == AF_INET) {
		if (inet_pton(AF_INET, addr, a) != 1) {
			/* an IPv4 client seen through an IPv6 socket: ::ffff:a.b.c.d */
			uint8_t v6[16];
			static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
			if (inet_pton(AF_INET6, addr, v6) != 1 || memcmp(v6, mapped, 12) != 0)
				return false;
			memcpy(a, v6 + 12, 4);
		}
	} else if (inet_pton(AF_INET6, addr, a) != 1) {
		return false;
	}
	for (int i = 0; i < 16; i++)
		if ((a[i] & r->mask[i]) != r->addr[i])
			return false;
	return true;
}

HbaMethod hba_match(const Hba *hba, const HbaRequest *req, int *line)
{
	const HbaRule *r = hba_match_rule(hba, req);
	if (line)
		*line = r ? r->line : 0;
	return r ? r->method : HBA_REJECT;
}

const HbaRule *hba_match_rule(const Hba *hba, const HbaRequest *req)
{
	for (int i = 0; hba && i < hba->n; i++) {
		const HbaRule *r = &hba->rules[i];
		switch (r->type) {
		case HBA_LOCAL:
			if (!req->is_unix)
				continue;
			break;
		case HBA_HOST:
			if (req->is_unix)
				continue;
			break;
		case HBA_HOSTSSL:
			if (req->is_unix || !req->is_tls)
				continue;
			break;
		case HBA_HOSTNOSSL:
			if (req->is_unix || req->is_tls)
				continue;
			break;
		}
		if (r->type != HBA_LOCAL && !addr_match(r, req->addr))
			continue;
		/* as in PostgreSQL: a physical replication connection matches the "replication"
		 * keyword and nothing else; for any other, the keyword matches nothing */
		if (req->replication ? !r->db.replication
		                     : !(names_match(&r->db, req->database) ||
		                         (r->db.sameuser && strcmp(req->database, req->user) == 0)))
			continue;
		if (!names_match(&r->user, req->user))
			continue;
		return r;
	}
	return NULL;
}

/* ---------------------------------------------------------------- auth_ident_file */

typedef struct IdentEntry {
	char *map;
	char *sys;  /* literal, or the expression without its leading / */
	char *user; /* NULL: all */
	bool is_regex;
	regex_t re;
} IdentEntry;

struct HbaIdent {
	int n;
	IdentEntry *e;
};

void hba_ident_free(HbaIdent *id)
{
	if (!id)
		return;
	for (int i = 0; i < id->n; i++) {
		free(id->e[i].map);
		free(id->e[i].sys);
		free(id->e[i].user);
		if (id->e[i].is_regex)
			regfree(&id->e[i].re);
	}
	free(id->e);
	free(id);
}

/* A quantifier right after another ("e++", "a*{2}") is undefined in POSIX ERE, and the C
 * library's regcomp() takes time and memory exponential in the run of them: refuse it.
 * Bracket expressions and escaped characters do not count. */
static bool regex_repeats_repetition(const char *re)
{
	bool after_quantifier = false, in_bracket = false;
	for (const char *p = re; *p; p++) {
		if (in_bracket) {
			if (*p == ']' && p[-1] != '[' && !(p[-1] == '^' && p[-2] == '['))
				in_bracket = false;
			continue;
		}
		bool quantifier = *p == '*' || *p == '+' || *p == '?' || *p == '{';
		if (quantifier && after_quantifier)
			return true;
		if (*p == '\\' && p[1]) {
			p++;
			after_quantifier = false;
		} else if (*p == '[') {
			in_bracket = true;
			after_quantifier = false;
		} else if (*p == '{') {
			while (p[1] && p[1] != '}')
				p++;
			after_quantifier = true;
			if (p[1])
				p++;
		} else {
			after_quantifier = quantifier;
		}
	}
	return false;
}

static int add_ident(Parser *ps, Field *fields, int nf, void *arg)
{
	HbaIdent *id = arg;
	IdentEntry e = {0};
	if (nf != 3)
		return fail(ps, "an ident line is MAPNAME SYSTEM-USERNAME USERNAME");
	for (int i = 0; i < 3; i++)
		if (fields[i].n != 1 || !fields[i].items[0].text[0])
			return fail(ps, "a list or an empty name in an ident line");
	const Item *sys = &fields[1].items[0], *user = &fields[2].items[0];
	e.is_regex = !sys->quoted && sys->text[0] == '/';
	if (e.is_regex && regex_repeats_repetition(sys->text + 1))
		return fail(ps, "invalid regular expression \"%s\": a repetition of a repetition",
		            sys->text + 1);
	if (e.is_regex && regcomp(&e.re, sys->text + 1, REG_EXTENDED) != 0)
		return fail(ps, "invalid regular expression \"%s\"", sys->text + 1);
	bool any_user = !user->quoted && strcmp(user->text, "all") == 0;
	e.map = strdup(fields[0].items[0].text);
	e.sys = strdup(e.is_regex ? sys->text + 1 : sys->text);
	e.user = any_user ? NULL : strdup(user->text);
	IdentEntry *ne = realloc(id->e, (size_t)(id->n + 1) * sizeof(IdentEntry));
	if (ne)
		id->e = ne;
	if (!e.map || !e.sys || (!any_user && !e.user) || !ne) {
		free(e.map);
		free(e.sys);
		free(e.user);
		if (e.is_regex)
			regfree(&e.re);
		return fail(ps, "out of memory");
	}
	id->e[id->n++] = e;
	return 0;
}

HbaIdent *hba_ident_parse(const char *text, const char *path, char *err, size_t errlen)
{
	Parser ps = {path ? path : "(ident)", 0, NULL, NULL, err, errlen};
	HbaIdent *id = calloc(1, sizeof(*id));
	if (!id) {
		fail(&ps, "out of memory");
		return NULL;
	}
	if (parse_lines(&ps, text, add_ident, id) < 0) {
		hba_ident_free(id);
		return NULL;
	}
	return id;
}

HbaIdent *hba_ident_load(const char *path, char *err, size_t errlen)
{
	char rerr[256] = "";
	char *text = read_file(NULL, path, rerr, sizeof(rerr));
	if (!text) {
		snprintf(err, errlen, "cannot read auth_ident_file %s: %s", path, rerr);
		return NULL;
	}
	HbaIdent *id = hba_ident_parse(text, path, err, errlen);
	free(text);
	return id;
}

/* A regex entry's user name with \1 replaced by the first group of the match in sys. */
static bool regex_user_matches(const IdentEntry *e, const regmatch_t *g, const char *sys, const char *user)
{
	char want[512];
	size_t o = 0;
	for (const char *p = e->user; *p; p++) {
		if (p[0] == '\\' && p[1] == '1' && g->rm_so >= 0) {
			size_t len = (size_t)(g->rm_eo - g->rm_so);
			if (o + len >= sizeof(want))
				return false;
			memcpy(want + o, sys + g->rm_so, len);
			o += len;
			p++;
			continue;
		}
		if (o + 1 >= sizeof(want))
			return false;
		want[o++] = *p;
	}
	want[o] = 0;
	return strcmp(want, user) == 0;
}

bool hba_ident_match(const HbaIdent *id, const char *map, const char *sys, const char *user)
{
	for (int i = 0; id && i < id->n; i++) {
		const IdentEntry *e = &id->e[i];
		regmatch_t g[2];
		if (strcmp(e->map, map) != 0)
			continue;
		if (!e->is_regex) {
			if (strcmp(e->sys, sys) == 0 && (!e->user || strcmp(e->user, user) == 0))
				return true;
			continue;
		}
		if (regexec(&e->re, sys, 2, g, 0) != 0)
			continue;
		if (!e->user || regex_user_matches(e, &g[1], sys, user))
			return true;
	}
	return false;
}
