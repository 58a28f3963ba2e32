#include "Vtop.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_vcd_c.h"
#endif
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <cstdint>
static Vtop* t;
static uint64_t simtime = 0;
#if VM_TRACE
static VerilatedVcdC* tfp = 0;
#endif
static void cycle(unsigned a, unsigned d, int we) {
    t->cfg__024addr = a; t->cfg__024wdata = d; t->cfg__024we = we;
    t->eval();
#if VM_TRACE
    if (tfp) tfp->dump(simtime);
#endif
    simtime += 5;
    t->clock = 1; t->eval();
#if VM_TRACE
    if (tfp) tfp->dump(simtime);
#endif
    simtime += 5;
    t->clock = 0; t->eval();
}
int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    t = new Vtop;
#if VM_TRACE
    if (argc > 1 && strlen(argv[1]) > 0) {
        Verilated::traceEverOn(true);
        tfp = new VerilatedVcdC;
        t->trace(tfp, 99);
        tfp->open(argv[1]);
    }
#endif
    t->clock = 0; t->cfg__024we = 0; t->eval();
    char op[8];
    while (scanf("%7s", op) == 1) {
        if (op[0] == 'Q') break;
        if (op[0] == 'W') { unsigned a, d; if (scanf("%u %u", &a, &d) != 2) return 2; cycle(a, d, 1); }
        else if (op[0] == 'T') { printf("%llu\n", (unsigned long long)std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count()); }
        else if (op[0] == 'I') { unsigned n; if (scanf("%u", &n) != 1) return 2; for (unsigned i = 0; i < n; i++) cycle(0xF00000u, 0, 0); }
        else if (op[0] == 'S') {
            cycle(0, 1, 1);
            unsigned long long n = 0;
            while (t->cfg__024running) { cycle(0xF00000u, 0, 0); n++; }
            printf("%llu\n", n);
        } else if (op[0] == 'R') {
            unsigned n; if (scanf("%u", &n) != 1) return 2;
            unsigned* a = (unsigned*)malloc(sizeof(unsigned) * (n + 2));
            for (unsigned i = 0; i < n; i++) if (scanf("%u", &a[i]) != 1) return 2;
            for (unsigned k = 0; k < n + 2; k++) {
                t->eval();
                if (k >= 2) printf("%u\n", (unsigned)t->cfg__024rdata);
                cycle(k < n ? a[k] : 0xF00000u, 0, 0);
            }
            free(a);
        } else return 3;
    }
#if VM_TRACE
    if (tfp) tfp->close();
#endif
    delete t;
    return 0;
}
