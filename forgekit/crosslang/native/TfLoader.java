// TfLoader - run a SavedModel's signature from Java, through the TensorFlow C API (JNI).
//
// usage: java -Djava.library.path=DIR TfLoader EXPORT_DIR TAG INPUT_TENSOR OUTPUT_TENSOR[,...] INPUT_FILE
//
// Same arguments, input file and output text as the C program tf_loader: the input's shape on
// the first line, then its values; for each output "# NAME shape D0 D1 ..." and its values, one
// row per line. Float.toString prints the shortest text that reads back as the same float32.
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

public final class TfLoader {
  static {
    System.loadLibrary("forgekit_tf_jni"); // libforgekit_tf_jni.so, found on java.library.path
  }

  static native long load(String exportDir, String tag);

  static native float[] run(long model, String input, long[] shape, float[] values,
                            String output, long[] outShape);

  static native void close(long model);

  public static void main(String[] args) throws IOException {
    if (args.length != 5) {
      System.err.println("usage: TfLoader EXPORT_DIR TAG INPUT_TENSOR OUTPUT_TENSOR[,...] INPUT_FILE");
      System.exit(2);
    }
    String[] lines = Files.readString(Path.of(args[4])).strip().split("\\s*\\n\\s*", 2);
    String[] dims = lines[0].trim().split("\\s+");
    long[] shape = new long[dims.length];
    for (int i = 0; i < dims.length; i++) shape[i] = Long.parseLong(dims[i]);
    String[] tokens = lines.length > 1 ? lines[1].trim().split("\\s+") : new String[0];
    float[] values = new float[tokens.length];
    for (int i = 0; i < tokens.length; i++) values[i] = Float.parseFloat(tokens[i]);

    long model;
    try {
      model = load(args[0], args[1]);
    } catch (IllegalStateException e) {
      System.err.println("error: " + e.getMessage());
      System.exit(1);
      return;
    }
    StringBuilder out = new StringBuilder();
    try {
      for (String name : args[3].split(",")) {
        long[] outShape = new long[9];
        float[] result = run(model, args[2], shape, values, name, outShape);
        long row = outShape[0] > 0 ? outShape[(int) outShape[0]] : 1;
        out.append("# ").append(name).append(" shape");
        for (int d = 1; d <= outShape[0]; d++) out.append(' ').append(outShape[d]);
        out.append('\n');
        for (int i = 0; i < result.length; i++) {
          out.append(result[i]).append((i + 1) % row == 0 ? '\n' : ' ');
        }
      }
    } catch (IllegalStateException e) {
      System.err.println("error: " + e.getMessage());
      System.exit(1);
    } finally {
      close(model);
    }
    System.out.print(out);
  }
}
