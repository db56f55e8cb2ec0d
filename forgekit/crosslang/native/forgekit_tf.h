/* forgekit_tf.h - load a SavedModel and run one signature through the TensorFlow C API.
 *
 * Shared by the command-line loader (tf_loader.c) and the Java JNI shim (tf_loader_jni.c), so
 * both languages run exactly the same C API calls. Only <tensorflow/c/c_api.h> is needed: it
 * ships inside the tensorflow pip wheel (tensorflow/include), and its functions are exported
 * by libtensorflow_cc.so.2 and libtensorflow_framework.so.2 in the same package folder.
 */
#ifndef FORGEKIT_TF_H
#define FORGEKIT_TF_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorflow/c/c_api.h"

typedef struct {
  TF_Graph *graph;
  TF_Session *session;
} fk_model;

/* Copy TF's status message into err; return 1 when status is not OK. */
static int fk_failed(TF_Status *status, const char *what, char *err, size_t errlen) {
  if (TF_GetCode(status) == TF_OK) return 0;
  snprintf(err, errlen, "%s: %s", what, TF_Message(status));
  return 1;
}

/* --- lesson: load ---------------------------------------------------------------------- */
/* Load the SavedModel at dir (a folder with saved_model.pb and variables/) under tag. */
static int fk_load(const char *dir, const char *tag, fk_model *m, char *err, size_t errlen) {
  TF_Status *status = TF_NewStatus();
  TF_SessionOptions *options = TF_NewSessionOptions();
  const char *tags[] = {tag};
  m->graph = TF_NewGraph();
  m->session = TF_LoadSessionFromSavedModel(options, NULL, dir, tags, 1, m->graph, NULL, status);
  int failed = fk_failed(status, "TF_LoadSessionFromSavedModel", err, errlen);
  TF_DeleteSessionOptions(options);
  TF_DeleteStatus(status);
  if (failed) {
    TF_DeleteGraph(m->graph);
    m->graph = NULL;
    m->session = NULL;
  }
  return failed;
}
/* --- end --------------------------------------------------------------------------------- */

/* --- lesson: lookup ---------------------------------------------------------------------- */
/* "serving_default_input:0" -> operation "serving_default_input", output index 0. */
static int fk_lookup(TF_Graph *graph, const char *tensor, TF_Output *out, char *err, size_t errlen) {
  char op[512];
  const char *colon = strrchr(tensor, ':');
  size_t n = colon ? (size_t)(colon - tensor) : strlen(tensor);
  if (n >= sizeof op) n = sizeof op - 1;
  memcpy(op, tensor, n);
  op[n] = '\0';
  out->oper = TF_GraphOperationByName(graph, op);
  out->index = colon ? atoi(colon + 1) : 0;
  if (out->oper == NULL) {
    snprintf(err, errlen, "no operation named '%s' in the graph (tensor '%s'): read the "
             "names from the SavedModel's signature (saved_model_cli show --all)", op, tensor);
    return 1;
  }
  if (out->index < 0 || out->index >= TF_OperationNumOutputs(out->oper)) {
    snprintf(err, errlen, "operation '%s' has %d output(s), tensor '%s' asks for index %d", op,
             TF_OperationNumOutputs(out->oper), tensor, out->index);
    return 1;
  }
  return 0;
}
/* --- end --------------------------------------------------------------------------------- */

/* The caller keeps ownership of the input values: TF must not free them. */
static void fk_keep(void *data, size_t len, void *arg) {
  (void)data;
  (void)len;
  (void)arg;
}

/* --- lesson: run ------------------------------------------------------------------------- */
/* Feed a float32 tensor of shape dims[0..ndims) (the caller keeps them) and fetch nout
 * tensors into results (the caller deletes them with TF_DeleteTensor). */
static int fk_run(fk_model *m, TF_Output input, const int64_t *dims, int ndims, float *values,
                  const TF_Output *outputs, int nout, TF_Tensor **results, char *err,
                  size_t errlen) {
  size_t count = 1;
  for (int i = 0; i < ndims; i++) count *= (size_t)dims[i];
  TF_Tensor *x = TF_NewTensor(TF_FLOAT, dims, ndims, values, count * sizeof(float), fk_keep,
                             NULL);
  TF_Status *status = TF_NewStatus();
  TF_SessionRun(m->session, NULL, &input, &x, 1, outputs, results, nout, NULL, 0, NULL, status);
  int failed = fk_failed(status, "TF_SessionRun", err, errlen);
  TF_DeleteStatus(status);
  TF_DeleteTensor(x);
  return failed;
}
/* --- end --------------------------------------------------------------------------------- */

static void fk_close(fk_model *m) {
  if (m->session) {
    TF_Status *status = TF_NewStatus();
    TF_CloseSession(m->session, status);
    TF_DeleteSession(m->session, status);
    TF_DeleteStatus(status);
  }
  if (m->graph) TF_DeleteGraph(m->graph);
  m->session = NULL;
  m->graph = NULL;
}

#endif
