/* dn_console: the operator console, a single HTML page (inline CSS and JavaScript, no
 * network beyond this server) served at GET /. Its source is server/console/index.html,
 * compiled into the binary at build time. */
#ifndef DN_CONSOLE_H
#define DN_CONSOLE_H

#include <stddef.h>

/* The page's bytes (static storage) and their length. */
const char *dn_console_page(size_t *len);

#endif
