/*
 * ops_http.c — the console's HTTP daemon (libmicrohttpd): routes, methods, bounds.
 *
 * One internal polling thread (MHD_USE_INTERNAL_POLLING_THREAD with MHD's best poll method),
 * non-blocking sockets: a slow or silent client holds one of RUSH_OPS_HTTP_CONNECTIONS_MAX
 * connections for at most RUSH_OPS_HTTP_TIMEOUT_S, never the thread, and never anything of the
 * front end or the shards (they do not know this thread exists). Each response is rendered
 * whole on this thread from one copy of the figures (ops_figures.c), then handed to MHD.
 *
 *   GET|HEAD /                    text/html   the dashboard page (built in)
 *   GET|HEAD /api/dashboard.json  application/json
 *   GET|HEAD /metrics             text/plain; version=0.0.4
 *   other paths 404; other methods 405 with Allow: GET, HEAD; out of memory 500
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_internal.h"

enum route { ROUTE_PAGE, ROUTE_JSON, ROUTE_METRICS, ROUTE_NONE };

static enum route route_of(const char *url)
{
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)
        return ROUTE_PAGE;
    if (strcmp(url, "/api/dashboard.json") == 0)
        return ROUTE_JSON;
    if (strcmp(url, "/metrics") == 0)
        return ROUTE_METRICS;
    return ROUTE_NONE;
}

static enum MHD_Result send_static(struct MHD_Connection *connection, unsigned status,
                                   const char *type, const char *body, size_t len)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (response == NULL)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return rc;
}

static enum MHD_Result send_figures(struct rush_ops *ops, struct MHD_Connection *connection,
                                    enum route route)
{
    static const char oom[] = "out of memory\n";
    struct ops_figures *figures = ops_figures_collect(ops);
    struct ops_text text = {0};
    if (figures != NULL && route == ROUTE_JSON)
        ops_dashboard_render(figures, &text);
    else if (figures != NULL)
        ops_metrics_render(figures, &text);
    free(figures);
    if (figures == NULL || text.failed || text.bytes == NULL) {
        free(text.bytes);
        return send_static(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", oom,
                           sizeof(oom) - 1);
    }
    struct MHD_Response *response =
        MHD_create_response_from_buffer(text.len, text.bytes, MHD_RESPMEM_MUST_FREE);
    if (response == NULL) {
        free(text.bytes);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
                            route == ROUTE_JSON ? "application/json"
                                                : "text/plain; version=0.0.4; charset=utf-8");
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response(connection, MHD_HTTP_OK, response);
    MHD_destroy_response(response);
    return rc;
}

static enum MHD_Result on_request(void *context, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **request_state)
{
    static const char not_found[] = "not found: GET /, /api/dashboard.json or /metrics\n";
    static const char not_allowed[] = "method not allowed: this endpoint is read-only\n";
    struct rush_ops *ops = context;
    (void)version;
    (void)upload_data;
    (void)request_state;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        *upload_data_size = 0; /* a body is never read */
        return send_static(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", not_allowed,
                           sizeof(not_allowed) - 1);
    }
    enum route route = route_of(url);
    switch (route) {
    case ROUTE_PAGE:
        return send_static(connection, MHD_HTTP_OK, "text/html; charset=utf-8",
                           rush_ops_dashboard_page, rush_ops_dashboard_page_bytes);
    case ROUTE_JSON:
    case ROUTE_METRICS:
        return send_figures(ops, connection, route);
    case ROUTE_NONE:
        break;
    }
    return send_static(connection, MHD_HTTP_NOT_FOUND, "text/plain", not_found,
                       sizeof(not_found) - 1);
}

static int parse_address(const char *text, struct sockaddr_in *out)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon == text || (size_t)(colon - text) >= 64)
        return -EINVAL;
    char host[64];
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    char *end = NULL;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || port == 0 || port > 65535)
        return -EINVAL;
    *out = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -EINVAL;
}

int ops_http_start(struct rush_ops *ops, char *why, size_t why_size)
{
    static struct sockaddr_in address; /* MHD keeps the pointer only during start */
    if (parse_address(ops->http_address, &address) != 0) {
        snprintf(why, why_size, "http endpoint %s: not HOST:PORT", ops->http_address);
        return -EINVAL;
    }
    errno = 0;
    struct MHD_Daemon *daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, ntohs(address.sin_port), NULL, NULL,
        on_request, ops, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&address,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)RUSH_OPS_HTTP_CONNECTIONS_MAX,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)RUSH_OPS_HTTP_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)RUSH_OPS_HTTP_MEMORY_BYTES, MHD_OPTION_END);
    if (daemon == NULL) {
        int error = errno ? errno : EADDRINUSE;
        snprintf(why, why_size, "http endpoint %s: cannot listen (%s)", ops->http_address,
                 strerror(error));
        return -error;
    }
    ops->daemon = daemon;
    return 0;
}

void ops_http_stop(struct rush_ops *ops)
{
    if (ops->daemon != NULL)
        MHD_stop_daemon(ops->daemon);
    ops->daemon = NULL;
}
