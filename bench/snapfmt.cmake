if(TARGET sqb_snapfmt)
  # snapfmt_bench: 1 GiB synthetic guest image written and read as
  # none/lz4/zstd snapshots against floors measured in the same run (plain
  # write/read, bare compressor, bare XXH3, one chunk decode).  Not a timing
  # test: the ctest only proves the --quick run works end to end.
  add_executable(snapfmt_bench snapfmt_bench.c)
  target_include_directories(snapfmt_bench PRIVATE ${PROJECT_SOURCE_DIR}/tests/snapfmt)
  target_link_libraries(snapfmt_bench PRIVATE sqb_snapfmt PkgConfig::ZSTD PkgConfig::LZ4
                        PkgConfig::XXHASH Threads::Threads)
  sqb_add_test(snapfmt.bench_quick COMMAND snapfmt_bench --quick --dir ${CMAKE_CURRENT_BINARY_DIR}
               LABELS integration TIMEOUT 300)
endif()
