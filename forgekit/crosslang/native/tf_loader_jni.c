/* tf_loader_jni.c - the JNI side of TfLoader.java: the same C API calls as tf_loader.c.
 *
 * JDK 17 has no final Foreign Function & Memory API, so Java reaches the TensorFlow C API
 * through JNI: this file is compiled with gcc against $JAVA_HOME/include into
 * libforgekit_tf_jni.so, linked to libtensorflow_cc.so.2 / libtensorflow_framework.so.2.
 */
#include <jni.h>

#include "forgekit_tf.h"

static void throw_java(JNIEnv *env, const char *message) {
  jclass cls = (*env)->FindClass(env, "java/lang/IllegalStateException");
  if (cls) (*env)->ThrowNew(env, cls, message);
}

JNIEXPORT jlong JNICALL Java_TfLoader_load(JNIEnv *env, jclass cls, jstring jdir, jstring jtag) {
  (void)cls;
  char err[4096];
  const char *dir = (*env)->GetStringUTFChars(env, jdir, NULL);
  const char *tag = (*env)->GetStringUTFChars(env, jtag, NULL);
  fk_model *m = calloc(1, sizeof *m);
  int failed = fk_load(dir, tag, m, err, sizeof err);
  (*env)->ReleaseStringUTFChars(env, jdir, dir);
  (*env)->ReleaseStringUTFChars(env, jtag, tag);
  if (failed) {
    free(m);
    throw_java(env, err);
    return 0;
  }
  return (jlong)(intptr_t)m;
}

/* Run input -> output once. outShape[0] receives the rank, outShape[1..] the dimensions. */
JNIEXPORT jfloatArray JNICALL Java_TfLoader_run(JNIEnv *env, jclass cls, jlong handle,
                                                jstring jinput, jlongArray jshape,
                                                jfloatArray jvalues, jstring joutput,
                                                jlongArray jout_shape) {
  (void)cls;
  fk_model *m = (fk_model *)(intptr_t)handle;
  char err[4096];
  TF_Output input, output;
  const char *in_name = (*env)->GetStringUTFChars(env, jinput, NULL);
  const char *out_name = (*env)->GetStringUTFChars(env, joutput, NULL);
  int failed = fk_lookup(m->graph, in_name, &input, err, sizeof err) ||
               fk_lookup(m->graph, out_name, &output, err, sizeof err);
  (*env)->ReleaseStringUTFChars(env, jinput, in_name);
  (*env)->ReleaseStringUTFChars(env, joutput, out_name);
  if (failed) {
    throw_java(env, err);
    return NULL;
  }
  int ndims = (*env)->GetArrayLength(env, jshape);
  int64_t dims[8];
  jlong *shape = (*env)->GetLongArrayElements(env, jshape, NULL);
  for (int i = 0; i < ndims && i < 8; i++) dims[i] = shape[i];
  (*env)->ReleaseLongArrayElements(env, jshape, shape, JNI_ABORT);

  jsize count = (*env)->GetArrayLength(env, jvalues);
  float *values = malloc(count * sizeof(float));
  (*env)->GetFloatArrayRegion(env, jvalues, 0, count, values);
  TF_Tensor *result = NULL;
  failed = fk_run(m, input, dims, ndims, values, &output, 1, &result, err, sizeof err);
  free(values);
  if (!failed && TF_TensorType(result) != TF_FLOAT) {
    snprintf(err, sizeof err, "output is not float32 (TF_DataType %d)", TF_TensorType(result));
    failed = 1;
  }
  if (failed) {
    if (result) TF_DeleteTensor(result);
    throw_java(env, err);
    return NULL;
  }
  jlong rank_and_dims[9] = {TF_NumDims(result)};
  for (int d = 0; d < TF_NumDims(result) && d < 8; d++) rank_and_dims[d + 1] = TF_Dim(result, d);
  (*env)->SetLongArrayRegion(env, jout_shape, 0, 9, rank_and_dims);
  jsize n = (jsize)TF_TensorElementCount(result);
  jfloatArray out = (*env)->NewFloatArray(env, n);
  (*env)->SetFloatArrayRegion(env, out, 0, n, TF_TensorData(result));
  TF_DeleteTensor(result);
  return out;
}

JNIEXPORT void JNICALL Java_TfLoader_close(JNIEnv *env, jclass cls, jlong handle) {
  (void)env;
  (void)cls;
  fk_model *m = (fk_model *)(intptr_t)handle;
  if (m) {
    fk_close(m);
    free(m);
  }
}
