/* dn_tflite: imports a TensorFlow Lite flatbuffer (a MobileNet-style CNN) into a float32
 * dn_graph. Quantised weights (int8/uint8 per-channel or per-tensor, int32 biases) are
 * dequantised; QUANTIZE/DEQUANTIZE and a RESHAPE of a 1x1 map are dropped because a
 * float HWC runtime does not need them. Anything else it does not understand (an op,
 * an activation, dilation, a depth multiplier, a dtype) is refused with a message. */
#ifndef DN_TFLITE_H
#define DN_TFLITE_H

#include "dn_graph.h"

#include <stddef.h>
#include <stdint.h>

typedef struct dn_tflite_model {
    dn_graph graph;       /* weight/bias pointers point into `weights` */
    float *weights;       /* one owned block for every node's weights and biases */
    size_t n_weights;
    char source_sha256[65];
    dn_error err;
} dn_tflite_model;

/* Input normalisation, which TFLite keeps outside the graph: x = (pixel - mean) / std. */
typedef struct dn_tflite_opts {
    float input_mean, input_std; /* MobileNetV2: 127.5, 127.5 -> [-1, 1] */
} dn_tflite_opts;

void dn_tflite_init(dn_tflite_model *m);
/* opts may be NULL (MobileNetV2 normalisation). The buffer is not kept. */
int dn_tflite_import(dn_tflite_model *m, const uint8_t *data, size_t len, const dn_tflite_opts *opts);
int dn_tflite_import_file(dn_tflite_model *m, const char *path, const dn_tflite_opts *opts);
void dn_tflite_free(dn_tflite_model *m);

#endif
