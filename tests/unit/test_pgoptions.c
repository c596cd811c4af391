/* test_pgoptions.c: the startup "options" value split into settings as PostgreSQL does. */
#include "pgoptions.h"
#include "unit.h"

static char got[1024];

/* Collect "name=value;" for every setting. */
static int collect(void *arg, const char *name, const char *value)
{
	(void)arg;
	size_t n = strlen(got);
	snprintf(got + n, sizeof(got) - n, "%s=%s;", name, value);
	return 0;
}

static int parse(const char *opts)
{
	got[0] = '\0';
	return pgoptions_parse(opts, collect, NULL);
}

static int stop_at_b(void *arg, const char *name, const char *value)
{
	(void)value;
	++*(int *)arg;
	return strcmp(name, "b") == 0 ? 7 : 0;
}

int main(void)
{
	CHECK(parse("") == 0);
	CHECK_STR(got, "");
	CHECK(parse("   ") == 0);
	CHECK(parse("-c datestyle=ISO") == 0);
	CHECK_STR(got, "datestyle=ISO;");
	CHECK(parse("  -c    datestyle=German,\\ YMD") == 0);
	CHECK_STR(got, "datestyle=German, YMD;");
	CHECK(parse("-ctimezone=Europe/Lisbon  -cdatestyle=German,\\ YMD") == 0);
	CHECK_STR(got, "timezone=Europe/Lisbon;datestyle=German, YMD;");
	CHECK(parse("--timezone=UTC\t--search-path=a,b") == 0);
	CHECK_STR(got, "timezone=UTC;search_path=a,b;"); /* dashes in names become underscores */
	CHECK(parse("-c t\\imezone=\\E\\u\\r\\o\\pe/Lisbon -c dat\\estyle\\=\\Ge\\rman,\\ YMD") == 0);
	CHECK_STR(got, "timezone=Europe/Lisbon;datestyle=German, YMD;");
	CHECK(parse("-c a=x=y -c b=") == 0); /* split at the first '='; an empty value is a value */
	CHECK_STR(got, "a=x=y;b=;");
	CHECK(parse("-c statement_timeout=60000 -c idle_in_transaction_session_timeout=120000") == 0);
	CHECK_STR(got, "statement_timeout=60000;idle_in_transaction_session_timeout=120000;");

	/* anything but -c and -- is refused; so is a setting without '=' or without a name */
	CHECK(parse("-d") == -1);
	CHECK(parse("-c timezone") == -1);
	CHECK(parse("-c") == -1);
	CHECK(parse("-c =x") == -1);
	CHECK(parse("--") == -1);
	CHECK(parse("--=x") == -1);
	CHECK(parse("datestyle=ISO") == -1);
	CHECK(parse("-c a=1 -B 100") == -1);
	CHECK_STR(got, "a=1;"); /* what came before the bad word was passed on */
	CHECK(parse("-c -d") == -1);

	/* the callback can stop the parse, and its value comes back */
	{
		int calls = 0;
		CHECK(pgoptions_parse("-c a=1 -c b=2 -c c=3", stop_at_b, &calls) == 7);
		CHECK(calls == 2);
	}
	UNIT_DONE();
}
