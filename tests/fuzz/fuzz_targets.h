/* The fuzz targets: what one input does, shared by the libFuzzer harnesses
 * (tests/fuzz/fuzz_<target>.c, built by `make fuzz`) and their regression replay in
 * `make test` (tests/test_fuzz_replay.c feeds every file of tests/fuzz/corpus/<target>/
 * and tests/fuzz/regress/<target>/ through the same function).
 *
 * A target returns normally whatever the bytes are; a broken invariant aborts, so the
 * fuzzer and the replay both see it as a crash. */
#ifndef DN_FUZZ_TARGETS_H
#define DN_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

typedef void (*dn_fuzz_fn)(const uint8_t *data, size_t len);

/* dn_image_decode (JPEG and PNG; a PNG's chunk CRCs are recomputed first) under a small
 * pixel limit, then a resize of what decoded. */
void dn_fuzz_image(const uint8_t *data, size_t len);
/* The safetensors reader on the bytes, then dn_model_load (no backbone) on the same
 * bytes as a file in memory; a model that loads is described and scores made-up features. */
void dn_fuzz_model(const uint8_t *data, size_t len);
/* The TFLite importer; a graph it accepts must survive the backbone file's JSON round trip. */
void dn_fuzz_tflite(const uint8_t *data, size_t len);
/* dn_api_parse_input on a JSON body. */
void dn_fuzz_request_json(const uint8_t *data, size_t len);
/* The first line is a Content-Type value, the rest a body: dn_api_parse_input, then
 * dn_multipart_boundary and dn_multipart_parse. */
void dn_fuzz_multipart(const uint8_t *data, size_t len);

/* The whole request handling of the service, without the network. dn_fuzz_service_setup
 * makes one service for the process: a data dir under $TMPDIR (else /tmp), the backbone of
 * $DEVNET_BACKBONE (else build/backbone.safetensors), role scorer (no retraining), and a
 * small model trained on generated images. Returns 0, or -1 with a message on stderr.
 * dn_fuzz_service_teardown frees it and removes the data dir.
 *
 * Input framing, four lines then the body:
 *     METHOD \n PATH \n CONTENT-TYPE \n QUERY \n BODY...
 * An empty CONTENT-TYPE line means no header; QUERY is "key=value" pairs joined by '&'
 * (heatmap and label are read; no percent-decoding); missing lines are empty. */
int dn_fuzz_service_setup(void);
void dn_fuzz_service(const uint8_t *data, size_t len);
void dn_fuzz_service_teardown(void);

#endif
