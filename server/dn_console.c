#include "dn_console.h"

/* server/console/index.html, turned into C by the Makefile (tools/embed.sh). */
extern const unsigned char dn_console_html[];
extern const size_t dn_console_html_len;

const char *dn_console_page(size_t *len)
{
    *len = dn_console_html_len;
    return (const char *)dn_console_html;
}
