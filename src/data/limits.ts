/**
 * How much a dataset may ask for. rebasin holds a dataset in memory as float32 (plus the array it was
 * decoded from), so these bound what any file — however it is compressed or whatever its header claims —
 * can make it allocate. They are far above the data rebasin is used with (Fashion-MNIST's training images:
 * 47 million values; CIFAR-10's: 154 million); --limit N takes the first N examples of larger sets.
 */

/** The most bytes one stored array may have once decompressed (an IDX file, a .npy file or .npz entry). */
export const MAX_ARRAY_BYTES = 2 ** 30;

/** The most input values a dataset may hold (2^28 float32 values: 1 GiB). */
export const MAX_INPUT_VALUES = 2 ** 28;

/** The most classes a label may ask for where no model gives the count (train builds a layer that wide). */
export const MAX_CLASSES = 1 << 16;
