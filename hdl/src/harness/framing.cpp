#include "Vtop.h"
#include "verilated.h"
#include <cstdio>
#include <cstdlib>
#include <vector>
static Vtop* t;
static unsigned long long cyc = 0, rng = 1;
static unsigned rnd() { rng = rng * 6364136223846793005ULL + 1442695040888963407ULL; return (unsigned)(rng >> 33); }
static int cs = 0; static unsigned k = 0, got = 0, flen = 0; static unsigned char fb[2048];
static int drain = 1;
static void consumer_before() {
    t->req__024done = 0;
    if (cs == 0 && drain && t->req__024avail) { cs = 1; k = 0; got = 0; }
    if (cs == 1) t->req__024off = k;
    if (cs == 2) { t->req__024done = 1; t->req__024release = 4 + flen; }
}
static void consumer_after() {
    if (cs == 1) {
        if (got < sizeof(fb)) fb[got] = (unsigned char)t->req__024data;
        got++; k++;
        if (got == 4) flen = fb[2] | (fb[3] << 8);
        if (got >= 4 && got == 4 + flen) cs = 2;
    } else if (cs == 2) {
        printf("A %u %u ", fb[0], fb[1]);
        for (unsigned i = 0; i < flen; i++) printf("%02x", fb[4 + i]);
        printf("\n");
        cs = 0;
    }
}
static void clock_edge() { t->eval(); t->clock = 1; t->eval(); t->clock = 0; t->eval(); cyc++; }
static int hexval(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }
static int read_hex_byte() {
    int c; do { c = getchar(); } while (c == ' ' || c == '\n');
    int d = getchar(); if (c == EOF || d == EOF) return -1;
    return hexval(c) * 16 + hexval(d);
}
int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    if (argc < 6) return 2;
    int pause = atoi(argv[1]); unsigned gap = atoi(argv[2]); rng = strtoull(argv[3], 0, 0);
    unsigned ready_pct = atoi(argv[4]); drain = atoi(argv[5]);
    int seeded = rng != 0; if (!rng) rng = 1;
    t = new Vtop;
    t->clock = 0; t->in_valid = 0; t->req__024done = 0; t->reply__024we = 0; t->reply__024send = 0; t->out_ready = 0;
    t->eval();
    char op[4];
    std::vector<unsigned char> v;
    while (scanf("%3s", op) == 1) {
        if (op[0] == 'Q') break;
        if (op[0] == 'F') {
            size_t n; if (scanf("%zu", &n) != 1) return 2;
            v.resize(n);
            for (size_t i = 0; i < n; i++) { int b = read_hex_byte(); if (b < 0) return 2; v[i] = b; }
            size_t i = 0; unsigned wait = 0;
            while (i < n || cs != 0 || (drain && t->req__024avail)) {
                consumer_before();
                int feed = i < n && wait == 0 && !(pause && (cs != 0 || t->req__024avail));
                t->in_valid = feed; t->in_data = feed ? v[i] : 0;
                clock_edge();
                consumer_after();
                if (feed) { i++; wait = seeded ? (gap ? rnd() % (gap + 1) : 0) : gap; }
                else if (wait > 0) wait--;
                t->in_valid = 0;
                if (cyc > 4000000000ULL) { fprintf(stderr, "hang\n"); return 1; }
            }
        } else if (op[0] == 'T') {
            unsigned seq, kind; size_t n; if (scanf("%u %u %zu", &seq, &kind, &n) != 3) return 2;
            for (size_t i = 0; i < n; i++) {
                int b = read_hex_byte(); if (b < 0) return 2;
                t->reply__024we = 1; t->reply__024addr = i; t->reply__024data = b; clock_edge();
            }
            t->reply__024we = 0; t->reply__024seq = seq; t->reply__024kind = kind; t->reply__024len = n; t->reply__024send = 1; clock_edge(); t->reply__024send = 0;
            printf("O ");
            unsigned long long lim = cyc + 100000;
            for (;;) {
                t->out_ready = (rnd() % 100) < ready_pct; t->eval();
                if (!t->reply__024busy) break;
                if (t->out_valid && t->out_ready) printf("%02x", (unsigned)t->out_data);
                clock_edge();
                if (cyc > lim) { fprintf(stderr, "transmitter hangs\n"); return 1; }
            }
            printf("\n");
        } else return 3;
    }
    printf("C %u %u %u %u %llu\n", (unsigned)t->frames, (unsigned)t->crc_errors,
           (unsigned)t->framing_errors, (unsigned)t->overruns, cyc);
    delete t;
    return 0;
}
