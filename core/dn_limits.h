/* dn_limits: every named limit of the library in one place (redis/sqlite style).
 * A limit protects memory or time against hostile or broken input; each is checked
 * before the allocation it guards. */
#ifndef DN_LIMITS_H
#define DN_LIMITS_H

/* Images */
#define DN_DEFAULT_MAX_PIXELS (40u * 1000u * 1000u) /* decoded width*height, default */
#define DN_MAX_IMAGE_SIDE 65535                      /* either dimension */
#define DN_MAX_ENCODED_IMAGE_BYTES (256u << 20)      /* a file we agree to read into memory */

/* safetensors */
#define DN_ST_MAX_HEADER_BYTES (4u << 20) /* JSON header length: cJSON may need ~30x in memory */
#define DN_ST_MAX_TENSORS 4096
#define DN_ST_MAX_NAME 128                 /* tensor name incl. NUL */
#define DN_ST_MAX_DIMS 4
#define DN_ST_MAX_FILE_BYTES (4ull << 30)

/* Backbone graphs */
#define DN_MAX_NODES 256
#define DN_MAX_NAME 96   /* node and tensor names incl. NUL */
#define DN_MAX_TAPS 16
#define DN_MAX_INPUT_SIDE 4096 /* forward-pass input height/width */
#define DN_TFLITE_MAX_BYTES (512u << 20)

/* Feature cache: a temporary file this old was left by a killed writer */
#define DN_CACHE_STALE_SECONDS 3600

/* Training */
#define DN_FUSION_MAX_FOLDS 10 /* head fits that choose the fusion weights: leave-one-out up to
                                * this many labelled anomalies, that many folds beyond */

/* API requests (api/dn_request, api/dn_multipart) */
#define DN_API_MAX_BATCH 64                /* images in one request, over any configuration */
#define DN_API_MAX_LABEL 15                /* feedback label characters, excl. NUL */
#define DN_MULTIPART_MAX_PARTS 128         /* a full batch, its label and mask, extra fields */
#define DN_MULTIPART_MAX_PART_HEADER 8192  /* one part's header block, bytes */
#define DN_MULTIPART_MAX_BOUNDARY 70       /* RFC 2046 */

#endif
