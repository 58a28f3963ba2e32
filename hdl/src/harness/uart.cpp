#include "Vtop.h"
#include "verilated.h"
#include <cstdio>
#include <vector>
int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    Vtop* t = new Vtop;
    unsigned inc, loop; size_t n, m;
    if (scanf("%u %u %zu", &inc, &loop, &n) != 3) return 2;
    std::vector<int> lv(n); std::vector<unsigned long long> cy(n);
    unsigned long long rx_total = 0;
    for (size_t i = 0; i < n; i++) { if (scanf("%d %llu", &lv[i], &cy[i]) != 2) return 2; rx_total += cy[i]; }
    if (scanf("%zu", &m) != 1) return 2;
    std::vector<unsigned> tb(m), tg(m);
    for (size_t i = 0; i < m; i++) if (scanf("%u %u", &tb[i], &tg[i]) != 2) return 2;
    t->clock = 0; t->inc = inc; t->rx = 1; t->tx_valid = 0; t->eval();
    size_t run = 0; unsigned long long left = n ? cy[0] : 0;
    size_t next = 0; unsigned long long wait = m ? tg[0] : 0;
    int prev_tx = 1, cur = -1; unsigned long long cnt = 0, c = 0, done_at = 0; int done = 0;
    for (;;) {
        int level = loop ? prev_tx : (run < n ? lv[run] : 1);
        t->rx = level;
        int offer = next < m && wait == 0;
        t->tx_valid = offer;
        t->tx_data = next < m ? tb[next] : 0;
        t->eval();
        if (t->rx_valid) printf("R %u\n", (unsigned)t->rx_data);
        int txp = t->tx;
        if (txp == cur) cnt++; else { if (cur >= 0) printf("T %d %llu\n", cur, cnt); cur = txp; cnt = 1; }
        prev_tx = txp;
        if (offer && t->tx_ready) { next++; wait = next < m ? tg[next] : 0; }
        else if (wait > 0) wait--;
        if (!loop && run < n) { if (--left == 0) { run++; left = run < n ? cy[run] : 0; } }
        t->clock = 1; t->eval(); t->clock = 0; t->eval();
        c++;
        int finished = c >= rx_total && next >= m && t->tx_ready;
        if (!done && finished) { done = 1; done_at = c; }
        else if (done && c >= done_at + 400) break;
    }
    printf("T %d %llu\n", cur, cnt);
    printf("E %u %u\n", (unsigned)t->frame_errors, (unsigned)t->glitches);
    delete t;
    return 0;
}
