/**
 * TEST ORACLE for which optimum src/match/lap.ts's JavaScript search picks when several are optimal (its
 * tie rules), written from the rules as documented, plainly (explicit sets, no NaN markers, no fused
 * branches), for small integer matrices where all arithmetic is exact:
 *  - the problem is made rows ≤ cols (a taller one is transposed) and minimised (negated when maximising);
 *  - a warm start sets the column potentials (given, or the best ones for given row potentials, a
 *    non-finite one read as 0) and keeps the given pairs that are tight under the row minima; when
 *    rows < cols every free column is raised to the largest potential and the untight pairs dropped
 *    again, until none is;
 *  - free rows are matched in increasing order, each by a Dijkstra search over reduced costs: a column's
 *    distance is lowered (and its predecessor set) only by a strictly shorter path, so the first row
 *    reaching it keeps it on ties; the column settled next is, among the unsettled ones at the lowest
 *    distance, the last free one, or the first one when none is free;
 *  - the potentials move so matched pairs and the path stay tight, and the path is flipped.
 */
export function naiveAssignment(
  cost: ArrayLike<number>,
  rows: number,
  cols: number,
  opts: { maximize?: boolean; warmStart?: { colPotential?: ArrayLike<number>; rowPotential?: ArrayLike<number>; rowToCol?: ArrayLike<number> } } = {},
): { rowToCol: number[] } {
  const transpose = rows > cols;
  const nr = transpose ? cols : rows;
  const nc = transpose ? rows : cols;
  const s = opts.maximize ? -1 : 1;
  const c = (i: number, j: number): number => s * (transpose ? cost[j * cols + i] : cost[i * cols + j]);
  const u = new Array<number>(nr).fill(0);
  let v = new Array<number>(nc).fill(0);
  const rowOf = new Array<number>(nc).fill(-1);
  const colOf = new Array<number>(nr).fill(-1);

  const warm = opts.warmStart;
  if (warm !== undefined) {
    const colSide = transpose ? warm.rowPotential : warm.colPotential;
    const rowSide = transpose ? warm.colPotential : warm.rowPotential;
    if (colSide !== undefined) v = Array.from(colSide);
    else if (rowSide !== undefined) v = Array.from({ length: nc }, (_, j) => Math.min(...Array.from({ length: nr }, (_, i) => c(i, j) - rowSide[i])));
    v = v.map((x) => (Number.isFinite(x) ? x : 0));
    if (warm.rowToCol !== undefined) {
      for (let i = 0; i < rows; i++) {
        const j: number = warm.rowToCol[i];
        if (j === -1) continue;
        const r = transpose ? j : i;
        const k = transpose ? i : j;
        colOf[r] = k;
        rowOf[k] = r;
      }
    }
    for (;;) {
      if (nr < nc) {
        const top = Math.max(...v);
        for (let j = 0; j < nc; j++) if (rowOf[j] < 0) v[j] = top;
      }
      for (let i = 0; i < nr; i++) u[i] = Math.min(...Array.from({ length: nc }, (_, j) => c(i, j) - v[j]));
      let dropped = false;
      for (let i = 0; i < nr; i++) {
        const j = colOf[i];
        if (j >= 0 && c(i, j) - v[j] !== u[i]) {
          colOf[i] = -1;
          rowOf[j] = -1;
          dropped = true;
        }
      }
      if (!dropped || nr === nc) break;
    }
  }

  for (let start = 0; start < nr; start++) {
    if (colOf[start] >= 0) continue;
    const dist = new Array<number>(nc).fill(Infinity);
    const pred = new Array<number>(nc).fill(-1);
    const settled: { col: number; dist: number }[] = [];
    const scanned: number[] = [];
    const isSettled = new Set<number>();
    let row = start;
    let reached = 0;
    let sink = -1;
    while (sink < 0) {
      scanned.push(row);
      for (let j = 0; j < nc; j++) {
        if (isSettled.has(j)) continue;
        const r = reached + c(row, j) - u[row] - v[j];
        if (r < dist[j]) {
          dist[j] = r;
          pred[j] = row;
        }
      }
      const open = Array.from({ length: nc }, (_, j) => j).filter((j) => !isSettled.has(j));
      const lowest = Math.min(...open.map((j) => dist[j]));
      const atLowest = open.filter((j) => dist[j] === lowest);
      const free = atLowest.filter((j) => rowOf[j] < 0);
      const next = free.length > 0 ? free[free.length - 1] : atLowest[0];
      reached = lowest;
      isSettled.add(next);
      settled.push({ col: next, dist: lowest });
      if (rowOf[next] < 0) sink = next;
      else row = rowOf[next];
    }
    u[start] += reached;
    for (let k = 1; k < scanned.length; k++) u[scanned[k]] += reached - settled[k - 1].dist;
    for (const { col, dist: d } of settled) v[col] -= reached - d;
    for (let j = sink; ; ) {
      const r = pred[j];
      rowOf[j] = r;
      const previous = colOf[r];
      colOf[r] = j;
      if (r === start) break;
      j = previous;
    }
  }
  const rowToCol = new Array<number>(rows).fill(-1);
  if (transpose) for (let j = 0; j < nc; j++) rowToCol[j] = rowOf[j];
  else for (let i = 0; i < nr; i++) rowToCol[i] = colOf[i];
  return { rowToCol };
}
