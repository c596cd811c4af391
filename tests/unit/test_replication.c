/* test_replication.c: the startup parameter "replication" and how a replication type is named. */
#include "replication.h"
#include "unit.h"

static ReplicationType parsed(const char *v, bool *ok)
{
	ReplicationType t = (ReplicationType)99;
	*ok = repl_parse_value(v, &t);
	return t;
}

static void test_parse(void)
{
	bool ok;
	CHECK(parsed("database", &ok) == REPLICATION_LOGICAL && ok);
	CHECK(parsed("DATABASE", &ok) == REPLICATION_LOGICAL && ok);
	const char *yes[] = {"true", "on", "yes", "1", "TRUE", "On"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		CHECK(parsed(yes[i], &ok) == REPLICATION_PHYSICAL && ok);
	const char *no[] = {"false", "off", "no", "0", "OFF"};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		CHECK(parsed(no[i], &ok) == REPLICATION_NONE && ok);
	const char *bad[] = {"", "2", "database1", "maybe", "t r u e"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parsed(bad[i], &ok);
		CHECK(!ok);
	}
}

static void test_names(void)
{
	CHECK_STR(repl_type_name(REPLICATION_NONE), "none");
	CHECK_STR(repl_type_name(REPLICATION_PHYSICAL), "physical");
	CHECK_STR(repl_type_name(REPLICATION_LOGICAL), "logical");
	CHECK_STR(repl_log_name(REPLICATION_NONE), "no");
	CHECK_STR(repl_log_name(REPLICATION_PHYSICAL), "yes");
	CHECK_STR(repl_log_name(REPLICATION_LOGICAL), "database");
}

int main(void)
{
	test_parse();
	test_names();
	UNIT_DONE();
}
