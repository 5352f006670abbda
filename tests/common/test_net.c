/*
 * Tests of src/common: addresses, key files, and the framing of net.c over
 * real loopback sockets (frames both ways, oversize and stalled frames close
 * the connection).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon.h"
#include "net.h"
#include "support.h"

static void test_addr_parse(void **state)
{
    (void)state;
    char host[64];
    uint16_t port;
    assert_int_equal(addr_parse("127.0.0.1:7460", host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7460);
    assert_int_equal(addr_parse("[::1]:7461", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7461);
    /* port 0 parses (a listener picks a free port); connecting to it is refused below */
    assert_int_equal(addr_parse("localhost:0", host, sizeof host, &port), 0);
    assert_int_equal(port, 0);
    assert_int_equal(addr_parse("127.0.0.1", host, sizeof host, &port), -1);
    assert_int_equal(addr_parse(":7460", host, sizeof host, &port), -1);
    assert_int_equal(addr_parse("h:65536", host, sizeof host, &port), -1);
    assert_int_equal(addr_parse("h:-1", host, sizeof host, &port), -1);
    assert_int_equal(addr_parse("h:80x", host, sizeof host, &port), -1);
    assert_int_equal(addr_parse("[::1:80", host, sizeof host, &port), -1);
}

static void test_keyfile(void **state)
{
    (void)state;
    char dir[] = "/tmp/cpns-keyfile-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/euk", dir);
    uint8_t key[CPNS_KEY_LEN], back[CPNS_KEY_LEN];
    for (int i = 0; i < CPNS_KEY_LEN; i++)
        key[i] = (uint8_t)i;
    assert_int_equal(keyfile_write(path, key, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(keyfile_read(path, back, err, sizeof err), 0);
    assert_memory_equal(key, back, sizeof key);
    /* never overwritten */
    assert_int_equal(keyfile_write(path, key, err, sizeof err), -1);
    /* readable by group: refused, naming the file and the mode */
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(keyfile_read(path, back, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "0640"));
    /* not a key */
    assert_int_equal(chmod(path, 0600), 0);
    FILE *f = fopen(path, "w");
    fputs("AAECAwQ=\n", f);
    fclose(f);
    assert_int_equal(keyfile_read(path, back, err, sizeof err), -1);
    unlink(path);
    rmdir(dir);
}

typedef struct {
    struct event_base *base;
    net_conn *server_side;
    int frames;
    uint8_t last[256];
    size_t last_len;
    int closed;
    char reason[128];
} peer;

static void on_frame(net_conn *c, const uint8_t *data, size_t len, void *arg)
{
    peer *p = arg;
    p->frames++;
    p->last_len = len < sizeof p->last ? len : sizeof p->last;
    memcpy(p->last, data, p->last_len);
    net_conn_send(c, data, len); /* echo */
}

static void on_close(net_conn *c, const char *reason, void *arg)
{
    peer *p = arg;
    (void)c;
    p->closed++;
    snprintf(p->reason, sizeof p->reason, "%s", reason);
    p->server_side = NULL;
}

static void on_accept(net_conn *c, void *arg)
{
    peer *p = arg;
    static const net_conn_cbs cbs = {NULL, on_frame, on_close};
    p->server_side = c;
    net_conn_set_cbs(c, &cbs, p);
    net_conn_set_stall_timeout(c, 1);
}

static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    return fd;
}

/* Runs the loop for ms (callbacks never break it, so no exit timer is left over). */
static void run_for(struct event_base *base, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static void test_frames_over_loopback(void **state)
{
    (void)state;
    peer p = {0};
    p.base = event_base_new();
    char err[256];
    net_listener *l = net_listen(p.base, "127.0.0.1:0", NULL, on_accept, &p, err, sizeof err);
    assert_non_null(l);
    uint16_t port = net_listener_port(l);
    assert_true(port != 0);
    /* connecting to port 0 is refused up front */
    net_conn_cbs none = {0};
    assert_null(net_connect(p.base, "127.0.0.1:0", NULL, &none, NULL, err, sizeof err));

    /* a frame split in three writes arrives whole, and is echoed */
    int fd = raw_connect(port);
    const char *xml = "<x/>";
    uint8_t hdr[4];
    cpns_frame_header(hdr, 4);
    assert_int_equal(write(fd, hdr, 2), 2);
    run_for(p.base, 50);
    assert_int_equal(write(fd, hdr + 2, 2), 2);
    assert_int_equal(write(fd, xml, 4), 4);
    run_for(p.base, 500);
    assert_int_equal(p.frames, 1);
    assert_memory_equal(p.last, xml, 4);
    run_for(p.base, 50);
    uint8_t back[8];
    assert_int_equal(read(fd, back, sizeof back), 8);
    assert_memory_equal(back, hdr, 4);
    assert_memory_equal(back + 4, xml, 4);

    /* an oversize length closes the connection */
    cpns_frame_header(hdr, CPNS_FRAME_MAX);
    hdr[1] = 0x02; /* 131072: over the limit */
    assert_int_equal(write(fd, hdr, 4), 4);
    run_for(p.base, 500);
    assert_int_equal(p.closed, 1);
    assert_non_null(strstr(p.reason, "length"));
    run_for(p.base, 50); /* the socket is closed when libevent finalises the bufferevent */
    assert_int_equal(read(fd, back, sizeof back), 0); /* EOF */
    close(fd);

    /* a half-sent frame that stalls is dropped after the stall timeout (1 s here) */
    fd = raw_connect(port);
    cpns_frame_header(hdr, 100);
    assert_int_equal(write(fd, hdr, 4), 4);
    assert_int_equal(write(fd, "<x", 2), 2);
    run_for(p.base, 2500);
    assert_int_equal(p.closed, 2);
    assert_non_null(strstr(p.reason, "stalled"));
    close(fd);

    net_listener_free(l);
    event_base_free(p.base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_parse),
        cmocka_unit_test(test_keyfile),
        cmocka_unit_test(test_frames_over_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
