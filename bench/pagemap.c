// What Linux's PAGEMAP_SCAN reports to wasmtime's pool when it frees an instance, and what each way of
// resetting a guest's memory costs (BENCHMARKS.md, "wasmtime 48.0.8 -> 50.0.1"). Not a test.
//   gcc -O2 bench/pagemap.c -o /tmp/pagemap && /tmp/pagemap [DIRTY_PAGES=20]
// The memory is a Rust guest's: 272 pages of 4 KiB (a 1 MiB stack, then data and heap); a request dirties
// a few pages below 1 MiB (the stack) and a few above (the heap). Needs Linux 6.7+ for the scan.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct pm_scan_arg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask,
      category_anyof_mask, return_mask;
};
struct page_region { uint64_t start, end, categories; };
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
enum { WRITTEN = 1 << 1, FILE_ = 1 << 2, PRESENT = 1 << 3, SWAPPED = 1 << 4, PFNZERO = 1 << 5 };
enum { PAGE = 4096, PAGES = 272, BUDGET = 1024 /* keep_resident 4 MiB */ };

// The three scans: wasmtime 48 (written AND present), wasmtime 50 (written), and written AND (present OR
// swapped), which resets swapped-out dirty pages as 50 means to without reporting untouched ones.
struct scan { const char *name; uint64_t mask, anyof; };
static const struct scan SCANS[] = {
    {"wasmtime 48: written+present", WRITTEN | PRESENT | PFNZERO | FILE_, 0},
    {"wasmtime 50: written", WRITTEN | PFNZERO | FILE_, 0},
    {"written+(present|swapped)", WRITTEN | PFNZERO | FILE_, PRESENT | SWAPPED},
};
static int pagemap;

// Zeroes what the scan reports (as wasmtime's reset does) and returns the pages it reported.
static size_t scan_and_reset(char *mem, const struct scan *s) {
  struct page_region r[64];
  struct pm_scan_arg a = {sizeof a, 0, (uint64_t)mem, (uint64_t)(mem + PAGES * PAGE), 0, (uint64_t)r, 64, BUDGET,
                          PFNZERO | FILE_, s->mask, s->anyof, 0};
  long n = ioctl(pagemap, PAGEMAP_SCAN, &a);
  if (n < 0) { perror("PAGEMAP_SCAN (Linux 6.7+)"); exit(1); }
  size_t bytes = 0;
  for (long i = 0; i < n; i++) {
    memset((void *)r[i].start, 0, r[i].end - r[i].start);
    bytes += r[i].end - r[i].start;
  }
  return bytes / PAGE;
}

static void dirty(char *mem, int pages) {
  for (int d = 0; d < pages; d++) {
    int page = d % 2 ? 255 - d / 2 : 257 + d / 2;
    if (page >= 0 && page < PAGES) mem[page * PAGE + 8] = 1;
  }
}

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

int main(int argc, char **argv) {
  int dirty_pages = argc > 1 ? atoi(argv[1]) : 20;
  pagemap = open("/proc/self/pagemap", O_RDONLY);
  char *mem = mmap(0, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  printf("pages reported after %d of %d pages were written to a fresh mapping:\n", dirty_pages, PAGES);
  for (size_t s = 0; s < sizeof SCANS / sizeof *SCANS; s++) {
    madvise(mem, 8 << 20, MADV_DONTNEED);
    dirty(mem, dirty_pages);
    printf("  %-32s %4zu\n", SCANS[s].name, scan_and_reset(mem, &SCANS[s]));
  }
  printf("cost of one reset after a request that dirties %d pages (steady state):\n", dirty_pages);
  const char *others[] = {"no scan, keep 4 MiB: memset all", "no scan, keep 64 KiB + madvise", "keep 0: madvise all"};
  for (int s = 0; s < 6; s++) {
    madvise(mem, 8 << 20, MADV_DONTNEED);
    size_t reported = 0;
    int iters = 20000;
    double t0 = 0;
    for (int i = -100; i < iters; i++) {
      if (i == 0) t0 = now_ns(), reported = 0;
      dirty(mem, dirty_pages);
      if (s < 3) reported += scan_and_reset(mem, &SCANS[s]);
      else if (s == 3) memset(mem, 0, PAGES * PAGE);
      else if (s == 4) memset(mem, 0, 16 * PAGE), madvise(mem + 16 * PAGE, (PAGES - 16) * PAGE, MADV_DONTNEED);
      else madvise(mem, PAGES * PAGE, MADV_DONTNEED);
    }
    printf("  %-32s %6.1f us  (%zu pages zeroed)\n", s < 3 ? SCANS[s].name : others[s - 3],
           (now_ns() - t0) / iters / 1000, s < 3 ? reported / iters : (size_t)(s == 3 ? PAGES : s == 4 ? 16 : 0));
  }
  return 0;
}
