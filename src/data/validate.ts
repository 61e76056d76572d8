/**
 * The one check of a dataset before anything is computed on it (pure), shared by every command and both
 * model paths (an ONNX graph, the built-in MLP of a safetensors file): a loss computed on examples of the
 * wrong size, on labels the model has no output for or on NaN inputs is a number that means nothing, and
 * exiting 0 with it is worse than refusing. Each refusal is one line naming the dataset and the first
 * offending example.
 */
import { InputError } from '../errors.js';
import { exampleSize, type Dataset } from './dataset.js';
import { MAX_CLASSES } from './limits.js';

/** What a model takes and gives, as far as its file says; null where it does not. */
export interface DataExpectation {
  /** Values per example (the product of the example's dimensions). */
  readonly inputSize: number | null;
  /** Number of classes (logits) it outputs. */
  readonly classes: number | null;
  /** The model, for messages (its path). */
  readonly label: string;
}

/**
 * Refuses `ds` (named `what` in messages, e.g. the --data value) when it is empty, holds a NaN or infinite
 * input, has a negative label, or — given `model` — has examples of another size than the model takes or
 * labels it has no class for. Without a model's class count, labels may ask for at most `maxClasses`
 * classes (a label of 10^7 would otherwise make train build a 10^7-wide output layer).
 */
export function validateDataset(ds: Dataset, what: string, model?: DataExpectation, maxClasses = MAX_CLASSES): void {
  if (ds.count < 1) throw new InputError(`dataset ${what}: it has no examples`);
  const size = exampleSize(ds.inputShape);
  if (model?.inputSize != null && model.inputSize !== size) {
    throw new InputError(
      `dataset ${what}: examples have ${size} values (shape [${ds.inputShape.join(', ')}]), but ${model.label} takes ${model.inputSize}`,
    );
  }
  const x = ds.inputs;
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      const example = Math.floor(i / size);
      throw new InputError(`dataset ${what}: example ${example} holds ${x[i]} (value ${i - example * size}); inputs must be finite numbers`);
    }
  }
  const classes = model?.classes ?? null;
  const limit = classes ?? maxClasses;
  for (let i = 0; i < ds.count; i++) {
    const y = ds.labels[i];
    if (y < 0) throw new InputError(`dataset ${what}: example ${i} has label ${y}; labels must be class indices >= 0`);
    if (y >= limit) {
      throw new InputError(
        classes !== null
          ? `dataset ${what}: example ${i} has label ${y}, but ${model!.label} has ${classes} classes (labels 0..${classes - 1})`
          : `dataset ${what}: example ${i} has label ${y}, asking for more than ${maxClasses} classes; labels must be class indices 0..C-1`,
      );
    }
  }
}
