/* pgoptions.c: parse the startup "options" value (-c name=value ...) like PostgreSQL's backend. */
#include "pgoptions.h"

#include <stdlib.h>
#include <string.h>

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Copy the next word of *pp into out (unescaped, NUL-terminated); NULL at the end. */
static char *next_word(const char **pp, char *out)
{
	const char *p = *pp;
	char *o = out;
	while (is_space(*p))
		p++;
	if (!*p)
		return NULL;
	while (*p && !is_space(*p)) {
		if (*p == '\\' && p[1])
			p++;
		*o++ = *p++;
	}
	*o = '\0';
	*pp = p;
	return out;
}

/* "name=value": split at the first '=', dashes in the name to underscores, then call fn. */
static int emit(char *setting, PgOptionFn fn, void *arg)
{
	char *eq = strchr(setting, '=');
	if (!eq || eq == setting)
		return -1;
	*eq = '\0';
	for (char *q = setting; *q; q++)
		if (*q == '-')
			*q = '_';
	return fn(arg, setting, eq + 1);
}

int pgoptions_parse(const char *opts, PgOptionFn fn, void *arg)
{
	size_t len = strlen(opts);
	char *word = malloc(len + 1);
	int rc = 0;
	if (!word)
		return -1;
	const char *p = opts;
	while (rc == 0 && next_word(&p, word)) {
		if (word[0] == '-' && word[1] == '-' && word[2])
			rc = emit(word + 2, fn, arg);
		else if (word[0] == '-' && word[1] == 'c' && word[2])
			rc = emit(word + 2, fn, arg);
		else if (strcmp(word, "-c") == 0)
			rc = next_word(&p, word) ? emit(word, fn, arg) : -1;
		else
			rc = -1;
	}
	free(word);
	return rc;
}
