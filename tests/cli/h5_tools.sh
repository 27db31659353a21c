#!/usr/bin/env bash
# HDF5 files written by src/io/h5io are readable by the standard HDF5 tools (hdf5-tools):
# h5dump/h5ls show the datasets, groups, attributes and values, and the "checksum" attribute is
# the CRC-32 of the little-endian raw bytes (checked independently: h5dump -b LE + gzip's CRC).
# The file is written by `test_h5io --write-sample` (next to build/dd2: build/tests/test_h5io;
# override with DD2_TEST_H5IO), once without MPI and once after MPI_Init.
source "$(dirname "$0")/lib.sh"

bin=${DD2_TEST_H5IO:-$(dirname "$DD2")/tests/test_h5io}
for tool in h5dump h5ls gzip od; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    fail "have_$tool" "$tool not found: install hdf5-tools (make deps / tools/install-deps.sh)"
    cli_done
  fi
done
if [ ! -x "$bin" ]; then
  fail have_test_h5io "$bin not built (run make)"
  cli_done
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
f=$tmp/sample.h5

expect_exit write_sample 0 "$bin" --write-sample "$f"
expect_exit write_sample_with_mpi 0 "$bin" --mpi --write-sample "$tmp/sample_mpi.h5"
[ -f "$f.tmp" ] && fail no_tmp_left "$f.tmp left behind" || pass no_tmp_left

expect_exit h5ls 0 h5ls -r "$f"
expect_contains h5ls_nested '/params/blocks.0.attn.wqkv Dataset {8, 24}'
expect_contains h5ls_wte '/params/wte              Dataset {16, 8}'
expect_contains h5ls_scalar '/stats/count             Dataset {SCALAR}'

expect_exit h5dump_header 0 h5dump -H "$tmp/sample_mpi.h5"
expect_contains h5dump_header_group 'GROUP "params"'

expect_exit h5dump 0 h5dump "$f"
expect_contains dataset_wte 'DATASET "wte"'
expect_contains dtype_f32 'H5T_IEEE_F32LE'
expect_contains dtype_f64 'H5T_IEEE_F64LE'
expect_contains dtype_i64 'H5T_STD_I64LE'
expect_contains dtype_i32 'H5T_STD_I32LE'
expect_contains dtype_u8 'H5T_STD_U8LE'
expect_contains shape_wte 'DATASPACE  SIMPLE { ( 16, 8 ) / ( 16, 8 ) }'
expect_contains values_wte '(0,0): -3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5,'
expect_contains values_count '(0): -424242'
expect_contains checksum_attr 'ATTRIBUTE "checksum"'
expect_contains checksum_type 'H5T_STD_U32LE'
expect_contains attr_format '(0): "dd2-test-1"'
expect_contains attr_step '(0): 123456789012'
expect_contains attr_global_shape '(0): "[16, 8]"'
expect_contains text_config 'fashion-mnist'

# the checksum attribute is the CRC-32 of the raw little-endian bytes (gzip's trailer holds the
# CRC-32 of its input, little-endian, in the last 8 bytes' first 4)
for ds in /params/wte /data/order /stats/mu /rng/state /stats/count; do
  name=crc${ds//\//_}
  if ! h5dump -b LE -d "$ds" -o "$tmp/raw.bin" "$f" >/dev/null 2>&1; then
    fail "$name" "h5dump -b LE -d $ds failed"
    continue
  fi
  want=$(gzip -c "$tmp/raw.bin" | tail -c8 | head -c4 | od -An -tu4 | tr -d ' ')
  got=$(h5dump -a "$ds/checksum" "$f" 2>&1 | sed -n 's/^ *(0): \([0-9]*\)$/\1/p')
  if [ -n "$want" ] && [ "$want" = "$got" ]; then pass "$name"; else fail "$name" "attribute $got, CRC-32 of raw bytes $want"; fi
done

cli_done
