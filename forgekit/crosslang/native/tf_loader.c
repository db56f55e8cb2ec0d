/* tf_loader - run a SavedModel's signature from C, through the TensorFlow C API.
 *
 * usage: tf_loader EXPORT_DIR TAG INPUT_TENSOR OUTPUT_TENSOR[,OUTPUT_TENSOR...] INPUT_FILE [REPEAT]
 *
 *   EXPORT_DIR     a SavedModel folder (model.export(...) or tf.saved_model.save(...))
 *   TAG            the MetaGraph tag, "serve" for an export
 *   INPUT_TENSOR   e.g. serving_default_input:0 (read it from the serving_default signature)
 *   OUTPUT_TENSOR  e.g. StatefulPartitionedCall:0
 *   INPUT_FILE     text: the input's shape on the first line ("3 32"), then the float values;
 *                  "-" reads standard input
 *   REPEAT         optional: run the batch this many more times and report the median latency
 *
 * Prints, for each output, "# NAME shape D0 D1 ..." and then its values, one row per line,
 * with 9 significant digits (enough to carry every float32 exactly). Errors go to stderr and
 * the exit status is 2 (bad usage or input) or 1 (TensorFlow refused).
 *
 * With FORGEKIT_UNCHECKED=1 in the environment the names are looked up as a plain caller does
 * (TF_GraphOperationByName, no NULL check), to show what a wrong name does without fk_lookup.
 */
#include <time.h>

#include "forgekit_tf.h"

#define MAX_DIMS 8
#define MAX_OUTPUTS 16

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Read "D0 D1 ...\n" then D0*D1*... floats. Returns the values (malloc'd) or NULL. */
static float *read_input(FILE *in, int64_t *dims, int *ndims, size_t *count) {
  char line[1024];
  if (!fgets(line, sizeof line, in)) return NULL;
  *ndims = 0;
  *count = 1;
  for (char *tok = strtok(line, " \t\r\n"); tok && *ndims < MAX_DIMS; tok = strtok(NULL, " \t\r\n")) {
    dims[*ndims] = atoll(tok);
    if (dims[*ndims] <= 0) return NULL;
    *count *= (size_t)dims[(*ndims)++];
  }
  if (*ndims == 0) return NULL;
  float *values = malloc(*count * sizeof(float));
  for (size_t i = 0; values && i < *count; i++) {
    if (fscanf(in, "%f", &values[i]) != 1) {
      free(values);
      return NULL;
    }
  }
  return values;
}

static void print_output(const char *name, TF_Tensor *t) {
  int nd = TF_NumDims(t);
  int64_t row = nd > 0 ? TF_Dim(t, nd - 1) : 1, total = TF_TensorElementCount(t);
  const float *v = TF_TensorData(t);
  printf("# %s shape", name);
  for (int d = 0; d < nd; d++) printf(" %lld", (long long)TF_Dim(t, d));
  printf("\n");
  for (int64_t i = 0; i < total; i++) printf("%.9g%c", v[i], (i + 1) % row ? ' ' : '\n');
}

/* A plain caller's lookup: split "op:index", take whatever TF_GraphOperationByName returns. */
/* --- lesson: plain lookup ------------------------------------------------------------- */
static int plain_lookup(TF_Graph *graph, const char *tensor, TF_Output *out) {
  char op[512];
  const char *colon = strrchr(tensor, ':');
  snprintf(op, sizeof op, "%.*s", (int)(colon ? colon - tensor : (long)strlen(tensor)), tensor);
  out->oper = TF_GraphOperationByName(graph, op); /* NULL for a wrong name, and no error */
  out->index = colon ? atoi(colon + 1) : 0;
  return 0;
}
/* --- end -------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  if (argc < 6 || argc > 7) {
    fprintf(stderr, "usage: %s EXPORT_DIR TAG INPUT_TENSOR OUTPUT_TENSOR[,...] INPUT_FILE [REPEAT]\n",
            argv[0]);
    return 2;
  }
  const char *dir = argv[1], *tag = argv[2], *input_name = argv[3], *path = argv[5];
  int repeat = argc == 7 ? atoi(argv[6]) : 0;
  char err[4096];

  int64_t dims[MAX_DIMS];
  int ndims;
  size_t count;
  FILE *in = strcmp(path, "-") ? fopen(path, "r") : stdin;
  float *values = in ? read_input(in, dims, &ndims, &count) : NULL;
  if (in && in != stdin) fclose(in);
  if (!values) {
    fprintf(stderr, "error: cannot read the input batch from %s (shape line, then floats)\n", path);
    return 2;
  }

  double t0 = now_ms();
  fk_model model;
  if (fk_load(dir, tag, &model, err, sizeof err)) {
    fprintf(stderr, "error: %s\n", err);
    return 1;
  }
  double load_ms = now_ms() - t0;

  TF_Output input, outputs[MAX_OUTPUTS];
  char *names[MAX_OUTPUTS];
  int nout = 0;
  const char *unchecked = getenv("FORGEKIT_UNCHECKED");
  int plain = unchecked && strcmp(unchecked, "1") == 0;
  int failed = plain ? plain_lookup(model.graph, input_name, &input)
                     : fk_lookup(model.graph, input_name, &input, err, sizeof err);
  for (char *tok = strtok(argv[4], ","); !failed && tok && nout < MAX_OUTPUTS; tok = strtok(NULL, ",")) {
    names[nout] = tok;
    failed = plain ? plain_lookup(model.graph, tok, &outputs[nout++])
                   : fk_lookup(model.graph, tok, &outputs[nout++], err, sizeof err);
  }
  TF_Tensor *results[MAX_OUTPUTS] = {0};
  t0 = now_ms();
  if (!failed) failed = fk_run(&model, input, dims, ndims, values, outputs, nout, results, err, sizeof err);
  double first_ms = now_ms() - t0;
  for (int i = 0; !failed && i < nout; i++) {
    if (TF_TensorType(results[i]) != TF_FLOAT) {
      snprintf(err, sizeof err, "output %s is not float32 (TF_DataType %d)", names[i],
               TF_TensorType(results[i]));
      failed = 1;
    }
  }
  if (failed) {
    fprintf(stderr, "error: %s\n", err);
    fk_close(&model);
    return 1;
  }
  for (int i = 0; i < nout; i++) print_output(names[i], results[i]);

  if (repeat > 0) { /* steady-state latency: the same batch again, outputs discarded */
    double *ms = malloc(repeat * sizeof(double));
    for (int r = 0; r < repeat && !failed; r++) {
      TF_Tensor *again[MAX_OUTPUTS] = {0};
      t0 = now_ms();
      failed = fk_run(&model, input, dims, ndims, values, outputs, nout, again, err, sizeof err);
      ms[r] = now_ms() - t0;
      for (int i = 0; i < nout; i++) if (again[i]) TF_DeleteTensor(again[i]);
    }
    qsort(ms, repeat, sizeof(double), by_value);
    fprintf(stderr, "timing load_ms=%.3f first_run_ms=%.3f median_run_ms=%.4f runs=%d\n", load_ms,
            first_ms, ms[repeat / 2], repeat);
    free(ms);
  } else {
    fprintf(stderr, "timing load_ms=%.3f first_run_ms=%.3f\n", load_ms, first_ms);
  }
  for (int i = 0; i < nout; i++) TF_DeleteTensor(results[i]);
  fk_close(&model);
  free(values);
  return failed;
}
