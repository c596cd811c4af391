/* config.h: the settings table and the parsed configuration (pgbouncer.ini) it fills. */
#ifndef TIDEPOOL_CONFIG_H
#define TIDEPOOL_CONFIG_H

#include <stdint.h>
#include <stddef.h>

typedef int64_t usec_t;

#define USEC_PER_SEC 1000000LL

typedef enum {
	POOL_MODE_INHERIT = -1,
	POOL_MODE_SESSION = 0,
	POOL_MODE_TRANSACTION = 1,
	POOL_MODE_STATEMENT = 2,
} PoolMode;

typedef enum {
	AUTH_TYPE_CERT = 0,
	AUTH_TYPE_MD5,
	AUTH_TYPE_SCRAM_SHA_256,
	AUTH_TYPE_PLAIN,
	AUTH_TYPE_TRUST,
	AUTH_TYPE_ANY,
	AUTH_TYPE_HBA,
	AUTH_TYPE_LDAP,
	AUTH_TYPE_PAM,
} AuthType;

typedef enum {
	LOAD_BALANCE_ROUND_ROBIN = 0,
	LOAD_BALANCE_DISABLE = 1,
} LoadBalanceHosts;

/* One [databases] entry. Owned by its Config; freed by config_free(). Unset ints are -1,
 * unset strings NULL, meaning "inherit the global value". */
typedef struct DatabaseDef {
	char *name;     /* client-facing name; "*" is the fallback */
	char *host;     /* NULL: Unix socket in the default dir; may be a comma list */
	int port;       /* default 5432 */
	char *dbname;   /* NULL: same as the client's database name */
	char *user;     /* forced server user (single pool for the db) */
	char *password; /* password of the forced user */
	char *auth_user;
	char *auth_query;
	char *auth_dbname;
	int pool_size;
	int min_pool_size;
	int reserve_pool_size;
	char *connect_query;
	int pool_mode;          /* PoolMode, POOL_MODE_INHERIT when unset */
	int load_balance_hosts; /* LoadBalanceHosts, -1 when unset */
	int max_db_connections;
	int max_db_client_connections;
	int server_lifetime; /* integer seconds, -1 unset */
	char *client_encoding;
	char *datestyle;
	char *timezone;
	char *application_name;
	char *source_file; /* where it was defined, for messages */
	int source_line;
} DatabaseDef;

/* One [users] entry; same ownership and "unset" conventions as DatabaseDef.
 * Timeouts are in microseconds, -1 when unset. */
typedef struct UserDef {
	char *name;
	int pool_size;
	int reserve_pool_size;
	int pool_mode;
	int max_user_connections;
	int max_user_client_connections;
	usec_t query_timeout;
	usec_t idle_transaction_timeout;
	usec_t transaction_timeout;
	usec_t client_idle_timeout;
} UserDef;

/* One [peers] entry: another process sharing our port (so_reuseport), which cancel requests
 * carrying its peer_id are forwarded to. port -1: 6432; pool_size -1: default_pool_size. */
typedef struct PeerDef {
	int peer_id; /* 1..16383 */
	char *host;  /* never NULL: an address, a name or a Unix socket directory */
	int port;
	int pool_size;
} PeerDef;

/* The whole parsed configuration. A reload parses into a fresh Config and swaps it in;
 * the old one is freed by its owner once nothing points into it. Every [pgbouncer] key of
 * the settings table has a field of the same name here. */
typedef struct Config {
	/* generic */
	char *logfile;
	char *pidfile;
	char *listen_addr;
	int listen_port;
	char *unix_socket_dir;
	int unix_socket_mode;
	char *unix_socket_group;
	char *user;
	int pool_mode;
	int max_client_conn;
	int default_pool_size;
	int min_pool_size;
	int reserve_pool_size;
	usec_t reserve_pool_timeout;
	int max_db_connections;
	int max_db_client_connections;
	int max_user_connections;
	int max_user_client_connections;
	int server_round_robin;
	char *track_extra_parameters;
	char *ignore_startup_parameters;
	int peer_id;
	int disable_pqexec;
	int application_name_add_host;
	char *conffile;
	char *service_name;
	char *job_name;
	usec_t stats_period;
	int max_prepared_statements;
	int scram_iterations;
	/* authentication */
	int auth_type;
	char *auth_hba_file;
	char *auth_ident_file;
	char *auth_file;
	char *auth_user;
	char *auth_query;
	char *auth_dbname;
	char *auth_ldap_options;
	/* logging */
	int syslog;
	char *syslog_ident;
	char *syslog_facility;
	int log_connections;
	int log_disconnections;
	int log_pooler_errors;
	int log_stats;
	int verbose;
	/* console access */
	char *admin_users;
	char *stats_users;
	/* sanity checks, timeouts */
	char *server_reset_query;
	int server_reset_query_always;
	usec_t server_check_delay;
	char *server_check_query;
	int server_fast_close;
	usec_t server_lifetime;
	usec_t server_idle_timeout;
	usec_t server_connect_timeout;
	usec_t server_login_retry;
	usec_t client_login_timeout;
	usec_t autodb_idle_timeout;
	usec_t dns_max_ttl;
	usec_t dns_nxdomain_ttl;
	usec_t dns_zone_check_period;
	char *resolv_conf;
	int query_wait_notify; /* seconds */
	/* TLS */
	char *client_tls_sslmode;
	char *client_tls_key_file;
	char *client_tls_cert_file;
	char *client_tls_ca_file;
	char *client_tls_protocols;
	char *client_tls_ciphers;
	char *client_tls13_ciphers;
	char *client_tls_ecdhcurve;
	char *client_tls_dheparams;
	char *server_tls_sslmode;
	char *server_tls_ca_file;
	char *server_tls_key_file;
	char *server_tls_cert_file;
	char *server_tls_protocols;
	char *server_tls_ciphers;
	char *server_tls13_ciphers;
	/* dangerous timeouts */
	usec_t query_timeout;
	usec_t query_wait_timeout;
	usec_t cancel_wait_timeout;
	usec_t client_idle_timeout;
	usec_t idle_transaction_timeout;
	usec_t transaction_timeout;
	usec_t suspend_timeout;
	/* low-level network */
	int pkt_buf;
	int max_packet_size;
	int listen_backlog;
	int sbuf_loopcnt;
	int so_reuseport;
	int tcp_defer_accept;
	int tcp_socket_buffer;
	int tcp_keepalive;
	int tcp_keepcnt;
	int tcp_keepidle;
	int tcp_keepintvl;
	int tcp_user_timeout;
	int workers; /* event-loop threads; 0 = one per CPU core (config_worker_count) */

	/* sections */
	DatabaseDef *databases;
	int n_databases;
	UserDef *users;
	int n_users;
	PeerDef *peers;
	int n_peers;
} Config;

typedef enum {
	SETTING_STR,
	SETTING_INT,
	SETTING_BOOL,
	SETTING_USEC, /* seconds in the file (floats allowed), microseconds in memory */
	SETTING_ENUM, /* int; names in Setting.enum_names */
	SETTING_MODE, /* octal file mode */
} SettingType;

/* How a setting is supported today: docs/compatibility.md says what happens when an unsupported one is
 * set to a non-default value. */
typedef enum {
	SUPPORT_YES = 0,
	SUPPORT_NO_ERROR, /* would weaken security or change results: refuse to load */
	SUPPORT_NO_WARN,  /* harmless to ignore: load with a WARNING naming it */
} SettingSupport;

/* Most event-loop threads (the workers setting). */
#define WORKERS_MAX 64

#define SETTING_NO_RELOAD 1 /* takes effect only at start ("changeable = no") */
#define SETTING_TLS       2 /* part of the TLS contexts: SET on the console rebuilds them */

typedef struct Setting {
	const char *name;
	SettingType type;
	size_t offset;             /* offsetof(Config, name) */
	const char *default_value; /* as written in an ini file; NULL = unset */
	int flags;                 /* SETTING_NO_RELOAD, SETTING_TLS */
	SettingSupport support;
	const char *const *enum_names; /* SETTING_ENUM: NULL-terminated, index = value */
	const char *help;              /* one line, for the entrypoint's --help and the README */
} Setting;

/* The table (sorted by name) and its length. */
extern const Setting config_settings[];
extern const int config_n_settings;

const Setting *config_find_setting(const char *name);

/* Allocate a Config holding every default. Never NULL (aborts on OOM). */
Config *config_new_defaults(void);

/* Parse an ini file into a fresh Config. On error returns NULL and writes one message
 * naming file, line and key into err. Warnings (unsupported harmless settings) are passed
 * to warn_cb one line each (may be NULL). */
typedef void (*ConfigWarnFn)(void *arg, const char *msg);
Config *config_load(const char *path, ConfigWarnFn warn_cb, void *warn_arg, char *err, size_t errlen);

/* Same, from a string (for tests and fuzzing); path is used in messages and for %include. */
Config *config_load_string(const char *text, const char *path, ConfigWarnFn warn_cb, void *warn_arg,
                           char *err, size_t errlen);

/* Set one [pgbouncer] key from its text form, validating it. Returns 0 or -1 with err. */
int config_set(Config *cf, const char *key, const char *value, char *err, size_t errlen);

/* Copy one setting's value from src to dst (strings duplicated). Returns 0, -1 on OOM. */
int config_copy_value(Config *dst, const Config *src, const Setting *s);

/* Format a setting's current value the way SHOW CONFIG prints it. Returns buf. */
const char *config_format_value(const Config *cf, const Setting *s, char *buf, size_t buflen);

/* Parse a connection string (the right side of a [databases] line) into def (whose name is
 * already set). Returns 0 or -1 with err ("unrecognized connection parameter: X"). */
int config_parse_connstr(DatabaseDef *def, const char *connstr, char *err, size_t errlen);

/* Look up a database definition by name; falls back to "*" when fallback is set. */
const DatabaseDef *config_find_database(const Config *cf, const char *name, int fallback);
const UserDef *config_find_user(const Config *cf, const char *name);
const PeerDef *config_find_peer(const Config *cf, int peer_id);

/* "yes", "yes, except (refuses to start): hba, ...", or how an unsupported one is treated. */
const char *config_describe_support(const Setting *s, char *buf, size_t buflen);

const char *config_pool_mode_name(int mode);
const char *config_auth_type_name(int auth_type);

void config_free(Config *cf);

#endif
