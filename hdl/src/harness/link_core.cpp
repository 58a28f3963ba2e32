#include "Vtop.h"
#include "verilated.h"
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    Vtop* t = new Vtop;
    unsigned long long gap = argc > 1 ? strtoull(argv[1], 0, 0) : 1; if (!gap) gap = 1;
    std::map<unsigned, unsigned> mem; std::string out;
    unsigned rsel = 0, rdata = 0, run_left = 0; unsigned long long cyc = 0, quiet = 0;
    t->clock = 0; t->in_valid = 0; t->out_ready = 0; t->cfg__024rdata = 0; t->cfg__024running = 0; t->eval();
    size_t n; int segs = 0;
    while (scanf("%zu", &n) == 1) {
    segs++;
    std::string in(n, '\0');
    for (size_t i = 0; i < n; i++) { unsigned b; if (scanf("%2x", &b) != 1) return 2; in[i] = (char)b; }
    size_t i = 0; quiet = 0;
    while (i < n || quiet < 50000) {
        int feed = i < n && cyc % gap == 0;
        t->in_valid = feed; t->in_data = feed ? (unsigned char)in[i] : 0;
        t->out_ready = (cyc & 3) != 0;
        t->cfg__024rdata = rdata;
        t->cfg__024running = run_left != 0;
        t->eval();
        int active = t->active;
        if (t->out_valid && t->out_ready) { out.push_back((char)t->out_data); active = 1; }
        unsigned a = t->cfg__024addr, wd = t->cfg__024wdata; int we = t->cfg__024we;
        if (we) { printf("W %u %u\n", a, wd); active = 1; }
        // the port: rdata <= word(rsel); rsel <= addr; write
        auto it = mem.find(rsel);
        unsigned nrdata = it != mem.end() ? it->second : rsel * 3u + 1u;
        unsigned nrsel = a;
        if (we) mem[a] = wd;
        if (run_left) run_left--;
        if (we && a == 0 && (wd & 1)) { run_left = 50 + (mem[1] & 255);}
        t->clock = 1; t->eval(); t->clock = 0; t->eval();
        rdata = nrdata; rsel = nrsel;
        if (feed) i++;
        cyc++;
        quiet = active ? 0 : quiet + 1;
        if (cyc > 2000000000ULL) { fprintf(stderr, "hang\n"); return 1; }
    }
    }
    if (!segs) return 2;
    printf("O ");
    for (unsigned char c : out) printf("%02x", c);
    printf("\nC %u %u %u %u\n", (unsigned)t->frames, (unsigned)t->crc_errors,
           (unsigned)t->framing_errors, (unsigned)t->overruns);
    delete t;
    return 0;
}
