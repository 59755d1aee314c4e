/*
 * dlopen-time: what loading a PAM module costs a C program like sshd, which (unlike the Rust
 * pam-bench) has neither libgcc_s.so.1 nor any other Rust runtime dependency loaded. Linked with
 * libpam, as every PAM application is, so only the module and what it alone needs are loaded.
 * Each round opens and closes every module once, in turn; prints the median and p10..p90 of
 * dlopen(RTLD_NOW) + dlclose per module.
 *
 *   cc -O2 -o dlopen-time bench/dlopen.c -Wl,--no-as-needed -lpam -ldl
 *   dlopen-time ROUNDS MODULE.so...
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: dlopen-time ROUNDS MODULE.so...\n");
        return 2;
    }
    int n = atoi(argv[1]), m = argc - 2;
    if (n < 1) {
        return 2;
    }
    double *t = calloc((size_t)n * m, sizeof(double));
    if (t == NULL) {
        return 1;
    }
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < m; k++) {
            double start = now_us();
            void *h = dlopen(argv[2 + k], RTLD_NOW | RTLD_LOCAL);
            if (h == NULL) {
                fprintf(stderr, "dlopen-time: %s\n", dlerror());
                return 1;
            }
            dlclose(h);
            t[(size_t)k * n + i] = now_us() - start;
        }
    }
    for (int k = 0; k < m; k++) {
        double *s = t + (size_t)k * n;
        qsort(s, n, sizeof(double), by_value);
        printf("DLOPEN module=%s median_us=%.1f p10_us=%.1f p90_us=%.1f\n", argv[2 + k], s[n / 2],
               s[n / 10], s[n * 9 / 10]);
    }
    free(t);
    return 0;
}
