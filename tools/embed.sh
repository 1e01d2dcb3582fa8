#!/bin/sh
# Writes FILE as C source: `const unsigned char SYMBOL[]` (the bytes and a final NUL) and
# `const size_t SYMBOL_len` (the bytes without it). Only od and awk (POSIX), so the build
# needs no xxd.
set -eu
if [ $# -ne 2 ] || [ ! -r "$1" ]; then
  echo "usage: $0 FILE SYMBOL > OUT.c" >&2
  exit 2
fi
od -An -v -tx1 "$1" | awk -v file="$1" -v sym="$2" '
BEGIN { printf "/* Generated from %s by tools/embed.sh. */\n#include <stddef.h>\n\nconst unsigned char %s[] = {\n", file, sym }
NF { line = "   "; for (i = 1; i <= NF; i++) line = line " 0x" $i ","; print line; n += NF }
END { printf "    0x00\n};\nconst size_t %s_len = %d;\n", sym, n }'
