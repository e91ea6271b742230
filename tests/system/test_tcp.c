/*
 * test_tcp.c — rushd's own SP-over-TCP transport (engine/front/sp_server.c) spoken byte by byte
 * with plain sockets: the greeting, the 64-bit length framing, backtraces with device hops, many
 * messages in one write and one message in many, and hostile peers. Every test runs the real
 * rushd on tcp://127.0.0.1 (rushd_child.h); nanomsg clients check that the server carries on.
 *
 * Hostile peers (a bad greeting, a PUB or REP peer, an announced length over the limit, a
 * message without a request id, a peer that never greets, one that stops reading, many that
 * vanish with messages in flight) must cost a closed connection at most: never a crash, a hang
 * or a reply lost to the well-behaved clients.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <endian.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

#include "codec/json.h"
#include "rushd_child.h"

#define TIMEOUT_MS 10000
#define GREETING_WAIT_MS 12000 /* rushd closes a silent peer after 5 s, checked once a second */
#define REPLY_BYTES_MAX 4096

static struct rushd_child server = {.pid = -1};
static int json_port;
static int http_port;

static void start(void)
{
    signal(SIGPIPE, SIG_IGN);
    child_make_dir(&server, "tcp");
    json_port = child_free_port();
    child_use_tcp(&server, child_free_port(), json_port, child_free_port());
    http_port = child_free_port();
    snprintf(server.http, sizeof(server.http), "127.0.0.1:%d", http_port);
    child_write_campaign(&server, CHILD_ENGINE, CHILD_TOKEN, child_skus);
    child_run(&server, NULL);
}

static void cleanup(void)
{
    child_cleanup(&server);
}

TestSuite(tcp, .init = start, .fini = cleanup, .timeout = 90);

/* ---- a bare SP peer ------------------------------------------------------------------------- */

static int peer_connect(int receive_buffer)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    if (receive_buffer > 0)
        cr_assert(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(int)) == 0);
    int on = 1;
    cr_assert(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == 0);
    struct timeval timeout = {.tv_sec = TIMEOUT_MS / 1000};
    cr_assert(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) == 0);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)json_port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert(connect(fd, (struct sockaddr *)&address, sizeof(address)) == 0, "connect: %s",
              strerror(errno));
    return fd;
}

static void write_all(int fd, const void *bytes, size_t len)
{
    const uint8_t *at = bytes;
    while (len > 0) {
        ssize_t n = send(fd, at, len, MSG_NOSIGNAL);
        cr_assert(n > 0, "send: %s", strerror(errno));
        at += n;
        len -= (size_t)n;
    }
}

/* false: the connection ended (or timed out) before len bytes came. */
static bool read_all(int fd, void *bytes, size_t len)
{
    uint8_t *at = bytes;
    while (len > 0) {
        ssize_t n = recv(fd, at, len, 0);
        if (n <= 0)
            return false;
        at += n;
        len -= (size_t)n;
    }
    return true;
}

static const uint8_t req_greeting[8] = {0, 'S', 'P', 0, 0, 48, 0, 0};

/* Sends a REQ's greeting and checks rushd's: a REP's. */
static int peer_open(int receive_buffer)
{
    int fd = peer_connect(receive_buffer);
    write_all(fd, req_greeting, sizeof(req_greeting));
    uint8_t theirs[8];
    cr_assert(read_all(fd, theirs, sizeof(theirs)), "no greeting from rushd");
    const uint8_t rep[8] = {0, 'S', 'P', 0, 0, 49, 0, 0};
    cr_assert(memcmp(theirs, rep, sizeof(rep)) == 0, "rushd's greeting is not a REP's");
    return fd;
}

static uint32_t word_at(const uint8_t *at)
{
    uint32_t word;
    memcpy(&word, at, sizeof(word));
    return be32toh(word);
}

/* One framed message: length, backtrace words, text. Returns its size. */
static size_t frame(uint8_t *out, const uint32_t *words, int word_count, const char *text)
{
    size_t len = strlen(text);
    uint64_t length = htobe64((uint64_t)word_count * 4 + len);
    memcpy(out, &length, sizeof(length));
    for (int i = 0; i < word_count; i++) {
        uint32_t word = htobe32(words[i]);
        memcpy(out + 8 + 4 * i, &word, sizeof(word));
    }
    memcpy(out + 8 + 4 * word_count, text, len);
    return 8 + (size_t)word_count * 4 + len;
}

/* One reply: its bytes (backtrace and body) in out; its length, or -1 when the peer closed. */
static int read_reply(int fd, uint8_t *out, size_t cap)
{
    uint64_t len;
    if (!read_all(fd, &len, sizeof(len)))
        return -1;
    len = be64toh(len);
    cr_assert(len < cap, "a reply of %llu bytes", (unsigned long long)len);
    cr_assert(read_all(fd, out, (size_t)len), "a reply cut short");
    out[len] = 0;
    return (int)len;
}

/* True when rushd closes the connection within wait_ms (EOF or reset; no reply on the way). */
static bool closed_by_rushd(int fd, int wait_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int64_t deadline = rush_clock_monotonic_ms() + wait_ms;
    uint8_t byte[256];
    while (rush_clock_monotonic_ms() < deadline) {
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, byte, sizeof(byte), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
    }
    return false;
}

#define QUERY "{\"op\":\"query_sku\",\"sku\":1005}"

/* A nanomsg REQ client is still answered. */
static void rushd_still_answers(void)
{
    char reply[REPLY_BYTES_MAX];
    cr_assert(child_json(server.json, QUERY, reply, sizeof(reply), TIMEOUT_MS) == 0,
              "no answer from rushd");
    cr_assert(strstr(reply, "\"available\":") != NULL, "%s", reply);
}

/* Waits until rushd's /metrics (read with curl) holds `line`. */
static bool metrics_show(const char *line)
{
    char command[128];
    snprintf(command, sizeof(command), "curl -s http://127.0.0.1:%d/metrics", http_port);
    static char text[1 << 18];
    for (int64_t deadline = rush_clock_monotonic_ms() + TIMEOUT_MS;
         rush_clock_monotonic_ms() < deadline; child_sleep_ms(50)) {
        FILE *curl = popen(command, "r");
        cr_assert(curl != NULL);
        size_t len = fread(text, 1, sizeof(text) - 1, curl);
        pclose(curl);
        text[len] = '\0';
        if (strstr(text, line) != NULL)
            return true;
    }
    return false;
}

/* ---- the protocol -----------------------------------------------------------------------------
 */

Test(tcp, many_messages_in_one_write_each_answered_once_with_its_id)
{
    int fd = peer_open(0);
    enum { COUNT = 500 };
    static uint8_t bytes[COUNT * 64];
    size_t len = 0;
    for (uint32_t i = 0; i < COUNT; i++)
        len += frame(bytes + len, &(uint32_t){0x80000000u | (i + 1)}, 1, QUERY);
    write_all(fd, bytes, len);
    static bool seen[COUNT + 1];
    uint8_t reply[REPLY_BYTES_MAX];
    for (int i = 0; i < COUNT; i++) {
        int n = read_reply(fd, reply, sizeof(reply));
        cr_assert(n > 4, "reply %d missing", i);
        uint32_t id = (uint32_t)word_at(reply);
        cr_assert(id & 0x80000000u, "reply without its request id");
        id &= 0x7fffffffu;
        cr_assert(id >= 1 && id <= COUNT && !seen[id], "request id %u twice or unknown", id);
        seen[id] = true;
        cr_assert(strstr((char *)reply + 4, "\"available\":") != NULL, "%s", reply + 4);
    }
    close(fd);
}

Test(tcp, a_message_sent_a_byte_at_a_time_is_answered)
{
    int fd = peer_connect(0);
    uint8_t bytes[256];
    memcpy(bytes, req_greeting, 8);
    size_t len = 8 + frame(bytes + 8, &(uint32_t){0x80000007u}, 1, QUERY);
    for (size_t i = 0; i < len; i++) {
        write_all(fd, bytes + i, 1);
        if (i % 8 == 0)
            child_sleep_ms(1); /* so that they arrive in separate segments */
    }
    uint8_t greeting[8];
    cr_assert(read_all(fd, greeting, sizeof(greeting)));
    uint8_t reply[REPLY_BYTES_MAX];
    cr_assert(read_reply(fd, reply, sizeof(reply)) > 4);
    cr_expect_eq(word_at(reply), 0x80000007u);
    cr_expect(strstr((char *)reply + 4, "\"available\":") != NULL, "%s", reply + 4);
    close(fd);
}

Test(tcp, device_hops_come_back_in_front_of_the_reply)
{
    int fd = peer_open(0);
    const uint32_t words[3] = {0x00000005u, 0x00000009u, 0x80001234u};
    uint8_t bytes[256];
    write_all(fd, bytes, frame(bytes, words, 3, QUERY));
    uint8_t reply[REPLY_BYTES_MAX];
    cr_assert(read_reply(fd, reply, sizeof(reply)) > 12);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(word_at(reply + 4 * i), words[i], "backtrace word %d", i);
    cr_expect(strstr((char *)reply + 12, "\"available\":") != NULL, "%s", reply + 12);
    close(fd);
}

/* ---- hostile peers ----------------------------------------------------------------------------
 */

struct hostile {
    const char *name;
    uint8_t bytes[64];
    size_t len;
};

Test(tcp, hostile_peers_are_closed_and_cost_nothing)
{
    static const struct hostile cases[] = {
        {"a bad greeting", {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T'}, 8},
        {"a PUB's greeting", {0, 'S', 'P', 0, 0, 32, 0, 0}, 8},
        {"a REP's greeting", {0, 'S', 'P', 0, 0, 49, 0, 0}, 8},
        {"reserved bits set", {0, 'S', 'P', 0, 0, 48, 0, 1}, 8},
        {"a length of 2^40", {0, 'S', 'P', 0, 0, 48, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0}, 16},
        {"a length just over the limit (JSON: 2 x 64 KiB + 4 + 32)",
         {0, 'S', 'P', 0, 0, 48, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0x25},
         16},
        {"no request id in 9 words",
         {0, 'S', 'P', 0, 0, 48, 0, 0, 0, 0, 0, 0, 0, 0, 0, 36},
         16 + 36},
        {"a message shorter than a request id",
         {0, 'S', 'P', 0, 0, 48, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x80, 1},
         18},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int fd = peer_connect(0);
        write_all(fd, cases[i].bytes, cases[i].len);
        cr_expect(closed_by_rushd(fd, TIMEOUT_MS), "%s: the connection stayed open", cases[i].name);
        close(fd);
        rushd_still_answers();
    }
    /* A peer cut off mid-greeting or mid-message is forgotten. */
    int fd = peer_connect(0);
    write_all(fd, req_greeting, 5);
    close(fd);
    fd = peer_open(0);
    uint8_t bytes[256];
    write_all(fd, bytes, frame(bytes, &(uint32_t){0x80000001u}, 1, QUERY) - 3);
    close(fd);
    rushd_still_answers();
    cr_expect(metrics_show("rush_tcp_protocol_closes_total 8\n"),
              "/metrics does not count the 8 hostile peers closed");
    cr_expect_eq(child_stop(&server, SIGTERM), 0, "rushd exited badly (see its log)");
}

Test(tcp, a_peer_that_never_greets_is_closed)
{
    int fd = peer_connect(0);
    cr_expect(closed_by_rushd(fd, GREETING_WAIT_MS), "a silent peer kept its connection");
    close(fd);
    rushd_still_answers();
}

/* ---- peers that stop reading or vanish --------------------------------------------------------
 */

/* 300,000 replies are about 20 MB: more than rushd's high mark (4 MiB) and the kernel's buffers
 * on both sides hold, so a writer that is never read from must block. */
enum { FLOOD = 300000, FLOOD_CHUNK = 1000, STUCK_MS = 500 };

struct flood {
    int fd;
    _Atomic uint32_t sent;
};

static void *flood(void *arg)
{
    struct flood *f = arg;
    static uint8_t bytes[FLOOD_CHUNK * 64];
    for (uint32_t sent = 0; sent < FLOOD;) {
        size_t len = 0;
        for (uint32_t i = 0; i < FLOOD_CHUNK; i++, sent++)
            len += frame(bytes + len, &(uint32_t){0x80000000u | sent}, 1, QUERY);
        write_all(f->fd, bytes, len);
        atomic_store(&f->sent, sent);
    }
    return NULL;
}

/* True once the writer has made no progress for STUCK_MS (rushd stopped reading it); false if
 * it wrote everything first. */
static bool writer_stuck(struct flood *f)
{
    uint32_t last = UINT32_MAX;
    int64_t since = rush_clock_monotonic_ms();
    while (atomic_load(&f->sent) < FLOOD) {
        uint32_t now = atomic_load(&f->sent);
        if (now != last) {
            last = now;
            since = rush_clock_monotonic_ms();
        } else if (rush_clock_monotonic_ms() - since > STUCK_MS) {
            return true;
        }
        child_sleep_ms(10);
    }
    return false;
}

Test(tcp, a_peer_that_stops_reading_is_paused_and_others_carry_on)
{
    /* A small receive buffer, and nothing read until every request is written: rushd's unsent
     * replies pass its high mark, it stops reading this peer, and the flood's writes block. */
    struct flood f = {.fd = peer_open(4096)};
    int fd = f.fd;
    pthread_t writer;
    cr_assert(pthread_create(&writer, NULL, flood, &f) == 0);
    cr_expect(writer_stuck(&f), "rushd read all %u requests of a peer that reads nothing", FLOOD);
    for (int i = 0; i < 5; i++)
        rushd_still_answers();
    uint8_t reply[REPLY_BYTES_MAX];
    uint32_t answered = 0, busy = 0;
    for (; answered < FLOOD; answered++) {
        int n = read_reply(fd, reply, sizeof(reply));
        if (n < 0)
            break;
        cr_assert(n > 4);
        busy += strstr((char *)reply + 4, "busy") != NULL;
    }
    pthread_join(writer, NULL);
    cr_expect_eq(answered, FLOOD, "%u of %u replies (%u busy)", answered, FLOOD, busy);
    close(fd);
    rushd_still_answers();
}

Test(tcp, peers_that_vanish_with_messages_in_flight_leave_the_others_answered)
{
    enum { PEERS = 100, EACH = 50 };
    int fds[PEERS];
    static uint8_t bytes[EACH * 64];
    size_t len = 0;
    for (uint32_t i = 0; i < EACH; i++)
        len += frame(bytes + len, &(uint32_t){0x80000000u | i}, 1, QUERY);
    for (int p = 0; p < PEERS; p++) {
        fds[p] = peer_open(0);
        write_all(fds[p], bytes, len);
        if (p % 2 == 1)
            close(fds[p]); /* gone before its replies */
    }
    uint8_t reply[REPLY_BYTES_MAX];
    for (int p = 0; p < PEERS; p += 2) {
        for (int i = 0; i < EACH; i++)
            cr_assert(read_reply(fds[p], reply, sizeof(reply)) > 4, "peer %d reply %d", p, i);
        close(fds[p]);
    }
    rushd_still_answers();
    cr_expect_eq(child_stop(&server, SIGTERM), 0, "rushd exited badly (see its log)");
}
