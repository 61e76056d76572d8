// Experiment, not part of the library: the square assignment solver of src/match/lap.ts / asm/lap.ts
// (same algorithm, same float64 operations in the same order, so the same answers) in C, to measure what a
// native build would gain. -DAVX512 scans 8 columns per step with AVX-512 intrinsics (the bookkeeping only
// where a lane may change it, as asm/lap.ts does with 2 and 4); without it, plain C left to the compiler.
// Build and run: see README.md here.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef AVX512
#include <immintrin.h>
#endif

static void arr(int n, double sign, const double *c, double *u, double *v, int *rowToCol, int *colToRow, int *queue) {
  int *next = queue + 5 * n;
  int qlen = 0;
  for (int i = 0; i < n; i++) if (rowToCol[i] < 0) queue[qlen++] = i;
  int budget = 4 * n;
  for (int round = 0; round < 2 && qlen > 0; round++) {
    int nextLen = 0, k = 0;
    while (k < qlen && budget-- > 0) {
      int i = queue[k];
      const double *row = c + (size_t)i * n;
      double umin = INFINITY, usub = INFINITY;
      int j1 = -1, j2 = -1;
      int j = 0;
      for (; j + 7 < n; j += 8) {
#ifdef AVX512
        __m512d h8 = _mm512_sub_pd(_mm512_mul_pd(_mm512_set1_pd(sign), _mm512_loadu_pd(row + j)), _mm512_loadu_pd(v + j));
        if (!_mm512_cmp_pd_mask(h8, _mm512_set1_pd(usub), _CMP_LT_OQ)) continue;
#else
        int any = 0;
        for (int t = 0; t < 8; t++) any |= (sign * row[j + t] - v[j + t]) < usub;
        if (!any) continue;
#endif
        for (int t = j; t < j + 8; t++) {
          double h = sign * row[t] - v[t];
          if (h < usub) {
            if (h >= umin) { usub = h; j2 = t; }
            else { usub = umin; j2 = j1; umin = h; j1 = t; }
          }
        }
      }
      for (; j < n; j++) {
        double h = sign * row[j] - v[j];
        if (h < usub) {
          if (h >= umin) { usub = h; j2 = j; }
          else { usub = umin; j2 = j1; umin = h; j1 = j; }
        }
      }
      if (j1 < 0 || umin == INFINITY) { k++; continue; }
      int displaced = colToRow[j1];
      if (umin < usub) { if (usub != INFINITY) v[j1] = v[j1] - (usub - umin); }
      else if (displaced >= 0 && j2 >= 0) { j1 = j2; displaced = colToRow[j2]; }
      if (displaced >= 0) rowToCol[displaced] = -1;
      rowToCol[i] = j1; colToRow[j1] = i;
      double own = sign * row[j1] - v[j1];
      u[i] = usub < own ? usub : own;
      if (displaced >= 0) {
        if (umin < usub) { queue[k] = displaced; continue; }
        next[nextLen++] = displaced;
      }
      k++;
    }
    for (int t = 0; t < nextLen; t++) queue[t] = next[t];
    qlen = nextLen;
  }
}

static int augment(int n, double sign, const double *c, double *u, double *v, int *col4row, int *row4col,
                   double *dist, int *pred, int *settledCols, double *settledDist, int *scannedRows) {
  for (int start = 0; start < n; start++) {
    if (col4row[start] >= 0) continue;
    for (int j = 0; j < n; j++) dist[j] = INFINITY;
    int numSettled = 0, numScanned = 0, i = start, sink = -1;
    double minVal = 0;
    while (sink < 0) {
      scannedRows[numScanned++] = i;
      double offset = minVal - u[i];
      const double *row = c + (size_t)i * n;
#ifdef AVX512
      __m512d off = _mm512_set1_pd(offset), sg = _mm512_set1_pd(sign), low8 = _mm512_set1_pd(INFINITY);
      __m256i iv = _mm256_set1_epi32(i);
      int j = 0;
      for (; j + 7 < n; j += 8) {
        __m512d d = _mm512_loadu_pd(dist + j);
        __m512d r = _mm512_sub_pd(_mm512_add_pd(off, _mm512_mul_pd(sg, _mm512_loadu_pd(row + j))), _mm512_loadu_pd(v + j));
        __mmask8 lt = _mm512_cmp_pd_mask(r, d, _CMP_LT_OQ);
        __m512d nd = _mm512_mask_blend_pd(lt, d, r);
        _mm512_storeu_pd(dist + j, nd);
        _mm256_mask_storeu_epi32(pred + j, lt, iv);
        low8 = _mm512_min_pd(nd, low8);
      }
      double low = _mm512_reduce_min_pd(low8);
      for (; j < n; j++) {
        double d = dist[j];
        double r = offset + sign * row[j] - v[j];
        if (r < d) { dist[j] = r; pred[j] = i; d = r; }
        if (d < low) low = d;
      }
      double lowest = low;
      int best = -1;
      __m512d eq = _mm512_set1_pd(lowest);
      for (int k = 0; k < n; k += 8) {
        if (k + 7 < n && !_mm512_cmp_pd_mask(_mm512_loadu_pd(dist + k), eq, _CMP_EQ_OQ)) continue;
        for (int t = k; t < k + 8 && t < n; t++) if (dist[t] == lowest && (best < 0 || row4col[t] < 0)) best = t;
      }
#else
      double low = INFINITY;
      for (int j = 0; j < n; j++) {
        double d = dist[j];
        double r = offset + sign * row[j] - v[j];
        int lt = r < d;
        double nd = lt ? r : d;
        dist[j] = nd;
        pred[j] = lt ? i : pred[j];
        low = nd < low ? nd : low;  // a settled column holds NaN: it never lowers
      }
      double lowest = low;
      int best = -1;
      for (int j = 0; j < n; j++) {
        if (dist[j] == lowest && (best < 0 || row4col[j] < 0)) best = j;
      }
#endif
      if (best < 0 || lowest == INFINITY) return 4;
      lowest = dist[best];
      minVal = lowest;
      dist[best] = NAN;
      settledCols[numSettled] = best;
      settledDist[numSettled++] = lowest;
      if (row4col[best] < 0) sink = best; else i = row4col[best];
    }
    u[start] += minVal;
    for (int k = 1; k < numScanned; k++) { int r = scannedRows[k]; u[r] += minVal - settledDist[k - 1]; }
    for (int k = 0; k < numSettled; k++) { int j = settledCols[k]; v[j] -= minVal - settledDist[k]; }
    int j = sink;
    for (;;) { int r = pred[j]; row4col[j] = r; int prev = col4row[r]; col4row[r] = j; if (r == start) break; j = prev; }
  }
  return 0;
}

// warm: v holds column potentials, given the previous matching.
static int solve(int n, double sign, int warm, const double *c, double *u, double *v, int *col4row, int *row4col,
                 double *dist, int *pred, int *settledCols, double *settledDist, int *scannedRows, int *argmin, const int *given, int *queue) {
  for (int j = 0; j < n; j++) { col4row[j] = -1; row4col[j] = -1; }
  if (!warm) {
    for (int j = 0; j < n; j++) { v[j] = INFINITY; argmin[j] = -1; }
    for (int i = 0; i < n; i++) {
      const double *row = c + (size_t)i * n;
      for (int j = 0; j < n; j++) { double x = sign * row[j]; if (x < v[j]) { v[j] = x; argmin[j] = i; } }
    }
    for (int i = 0; i < n; i++) u[i] = 0;
    for (int j = n - 1; j >= 0; j--) { int i = argmin[j]; if (i >= 0 && col4row[i] < 0) { col4row[i] = j; row4col[j] = i; } }
  } else {
    for (int j = 0; j < n; j++) if (!isfinite(v[j])) v[j] = 0;
    for (int i = 0; i < n; i++) {
      const double *row = c + (size_t)i * n;
      double m = INFINITY; int at = 0;
      int j = 0;
#ifdef AVX512
      for (; j + 7 < n; j += 8) {
        __m512d r8 = _mm512_sub_pd(_mm512_mul_pd(_mm512_set1_pd(sign), _mm512_loadu_pd(row + j)), _mm512_loadu_pd(v + j));
        if (!_mm512_cmp_pd_mask(r8, _mm512_set1_pd(m), _CMP_LT_OQ)) continue;
        for (int t = j; t < j + 8; t++) { double r = sign * row[t] - v[t]; if (r < m) { m = r; at = t; } }
      }
#endif
      for (; j < n; j++) { double r = sign * row[j] - v[j]; if (r < m) { m = r; at = j; } }
      u[i] = m; argmin[i] = at;
    }
    for (int i = 0; i < n; i++) { int j = given[i]; if (j == -1) continue; if (sign * c[(size_t)i * n + j] - v[j] <= u[i]) { col4row[i] = j; row4col[j] = i; } }
    for (int i = 0; i < n; i++) { int j = argmin[i]; if (col4row[i] < 0 && row4col[j] < 0) { col4row[i] = j; row4col[j] = i; } }
  }
  arr(n, sign, c, u, v, col4row, row4col, queue);
  return augment(n, sign, c, u, v, col4row, row4col, dist, pred, settledCols, settledDist, scannedRows);
}

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }

static void *readAll(const char *dir, const char *name, size_t bytes) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) { perror(path); exit(2); }
  void *p = malloc(bytes);
  if (fread(p, 1, bytes, f) != bytes) { fprintf(stderr, "%s: short\n", path); exit(2); }
  fclose(f);
  return p;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: lap DIR\n"); return 2; }
  const char *dir = argv[1];
  char path[4096];
  snprintf(path, sizeof path, "%s/steps.txt", dir);
  FILE *f = fopen(path, "r");
  if (!f) { perror(path); return 2; }
  int n, steps, kinds;
  if (fscanf(f, "%d %d %d", &n, &steps, &kinds) != 3) return 2;
  int *permOf = malloc(sizeof(int) * steps);
  for (int i = 0; i < steps; i++) if (fscanf(f, "%d", &permOf[i]) != 1) return 2;
  fclose(f);
  double *all = readAll(dir, "mats.f64", sizeof(double) * steps * n * n);
  int *want = readAll(dir, "rows.i32", sizeof(int) * steps * n);
  double *u = malloc(8 * n), *v = malloc(8 * n), *dist = malloc(8 * n), *sd = malloc(8 * n);
  int *c4r = malloc(4 * n), *r4c = malloc(4 * n), *pred = malloc(4 * n), *sc = malloc(4 * n), *sr = malloc(4 * n), *am = malloc(4 * n), *q = malloc(4 * 6 * n);
  double **pv = malloc(sizeof(double *) * kinds);
  int **pg = malloc(sizeof(int *) * kinds);
  int *seen = malloc(sizeof(int) * kinds);
  for (int k = 0; k < kinds; k++) { pv[k] = malloc(8 * n); pg[k] = malloc(4 * n); }
  double best = 1e300;
  int differing = 0;
  for (int rep = 0; rep < 20; rep++) {
    memset(seen, 0, sizeof(int) * kinds);
    differing = 0;
    double t0 = now();
    for (int s = 0; s < steps; s++) {
      int k = permOf[s];
      if (seen[k]) memcpy(v, pv[k], 8 * n);
      if (solve(n, -1.0, seen[k], all + (size_t)s * n * n, u, v, c4r, r4c, dist, pred, sc, sd, sr, am, pg[k], q) != 0) return 3;
      memcpy(pv[k], v, 8 * n);
      memcpy(pg[k], c4r, 4 * n);
      seen[k] = 1;
      if (memcmp(c4r, want + (size_t)s * n, 4 * n) != 0) differing++;
    }
    double t = now() - t0;
    if (t < best) best = t;
  }
#ifdef AVX512
  const char *kind = "AVX-512 intrinsics";
#else
  const char *kind = "plain C";
#endif
  printf("native (%s): %d warm-started solves of %d x %d, best of 20: %.2f ms; answers differing from the library's: %d\n", kind, steps, n, n, best, differing);
  return differing == 0 ? 0 : 1;
}
