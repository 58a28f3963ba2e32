#include "Vtop.h"
#include "verilated.h"
#include <cstdio>
#include <cstdlib>
static int code(unsigned z) { return (z & 0x8000) ? -(int)(z & 0x7FFF) : (int)z; }
static void step(Vtop* t) { t->eval(); t->clock = 1; t->eval(); t->clock = 0; t->eval(); }
int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    Vtop* t = new Vtop;
    unsigned s[6];
    for (int i = 0; i < 6; i++) s[i] = strtoul(argv[1 + i], 0, 0);
    long n = strtol(argv[7], 0, 0); long ea = strtol(argv[8], 0, 0), eb = strtol(argv[9], 0, 0);
    t->clock = 0; t->load = 0; t->pop_a = 0; t->pop_b = 0; t->seed_we_a = 0; t->seed_we_b = 0;
    for (int l = 0; l < 2; l++)
        for (int c = 0; c < 3; c++) {
            t->seed_we_a = l == 0; t->seed_we_b = l == 1; t->seed_sel = c; t->seed_data = s[3 * l + c];
            step(t);
        }
    t->seed_we_a = 0; t->seed_we_b = 0; t->load = 1;
    step(t);
    t->load = 0;
    long ga = 0, gb = 0, cyc = 0;
    while (ga < n || gb < n) {
        int fa = t->valid_a && ga < n && (cyc % ea == 0);
        int fb = t->valid_b && gb < n && (cyc % eb == 0);
        if (fa) { printf("a %d\n", code(t->z_a)); ga++; }
        if (fb) { printf("b %d\n", code(t->z_b)); gb++; }
        t->pop_a = fa; t->pop_b = fb;
        step(t);
        cyc++;
        if (cyc > 10 * n + 100) { fprintf(stderr, "stalled\n"); return 1; }
    }
    delete t;
    return 0;
}
