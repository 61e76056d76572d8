/**
 * Datasets: plain-data `Dataset`s, their views and batches (pure), IDX and .npy/.npz parsers (pure),
 * the synthetic three-cluster task (pure), datasets from arrays in memory (pure), and file loaders (`load.ts`, the only Node-only part).
 */
export * from './dataset.js';
export * from './idx.js';
export * from './npy.js';
export * from './synthetic.js';
export * from './from-arrays.js';
export * from './load.js';
