/**
 * What the measuring code needs from a model: the runner contract, defined beside the runners in
 * engine/runner.ts (so that engine, model and measure do not import each other in a cycle).
 */
export type { BatchProgress, LabelledData, ModelRunner, ProbeBatch, UnitActivations } from '../engine/runner.js';
