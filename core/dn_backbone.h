/* dn_backbone: the frozen CNN trunk. Loaded once per process from a safetensors file
 * (weights + graph in __metadata__) and shared read-only by every thread; each thread
 * runs it through its own dn_forward context (dn_forward.h). */
#ifndef DN_BACKBONE_H
#define DN_BACKBONE_H

#include "dn_graph.h"
#include "dn_image.h"
#include "dn_safetensors.h"

#define DN_BACKBONE_FORMAT "devnet-backbone"
#define DN_BACKBONE_VERSION "1"

typedef struct dn_backbone {
    dn_graph graph;      /* weight pointers point into st */
    dn_safetensors st;
    char sha256[65];     /* of the safetensors file: identifies features in caches and models */
    char source_sha256[65]; /* of the file it was imported from */
    dn_error err;
} dn_backbone;

void dn_backbone_init(dn_backbone *bb);
/* Loads path; when PATH.sha256 exists (dn_backbone_save writes it), the file's sha256
 * must match it, else DN_EMISMATCH. */
int dn_backbone_load(dn_backbone *bb, const char *path);
void dn_backbone_free(dn_backbone *bb);

/* Writes a graph and its weights as a backbone safetensors file (atomically), and its
 * sha256 next to it in PATH.sha256. source_sha256 names the file it came from. */
int dn_backbone_save(const dn_graph *g, const char *source_sha256, const char *path, dn_error *err);

/* The map a feature extractor taps at a given output stride (relative to the input):
 * the last block output at that stride before the global pool, or -1. A block output is
 * a linear node (MobileNetV2's projections and residual sums carry no activation), so
 * the tap is the 32-channel stride-8 map, not the 192-channel expansion that follows;
 * graphs without linear nodes at that stride give their last node there. */
int dn_backbone_tap_at_stride(const dn_backbone *bb, int stride);

/* The last spatial map before the global pool (MobileNetV2: the 1280-channel map), or -1. */
int dn_backbone_final_map(const dn_backbone *bb);

/* The backbone's input for a decoded image: the whole image resized to h x w (bilinear,
 * area-averaged where shrunk more than 2x) and normalised as the graph says; out holds
 * h * w * 3 floats (HWC). */
int dn_backbone_input(const dn_backbone *bb, const dn_image *img, int h, int w, float *out,
                      dn_error *err);

/* A tap by name: "final", "strideN" (N = 2, 4, 8, ...) or a node name; -1 if unknown. */
int dn_backbone_resolve_tap(const dn_backbone *bb, const char *name);

#endif
