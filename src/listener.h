/* listener.h: listening sockets (TCP listen_addr list and the Unix socket). */
#ifndef TIDEPOOL_LISTENER_H
#define TIDEPOOL_LISTENER_H

#include "app.h"

/* Open every listening socket of the config. Returns 0 or -1 with a message in err. */
int listener_open_all(App *app, char *err, size_t errlen);
void listener_start(App *app);
/* Stop accepting on TCP (keep_unix: the Unix socket stays open for the console). */
void listener_close_tcp(App *app);
void listener_close_all(App *app);
/* Re-enable listeners paused after running out of file descriptors. */
void listener_resume_if_needed(Worker *w);

#endif
