if(TARGET sqb_dirty)
  # dirty_bench: per-backend arm/collect/fault/loop costs against the bare
  # mechanisms, plus an exactness pass.  Not a timing test: the ctest below
  # only proves the --quick smoke run works and misses nothing.
  add_executable(dirty_bench dirty_bench.c
                 ${PROJECT_SOURCE_DIR}/tests/dirty/dirty_harness.c
                 ${PROJECT_SOURCE_DIR}/tests/dirty/dirty_tinyvm.c)
  target_include_directories(dirty_bench PRIVATE ${PROJECT_SOURCE_DIR}/tests/dirty
                             ${PROJECT_SOURCE_DIR}/dirty)
  target_link_libraries(dirty_bench PRIVATE sqb_dirty Threads::Threads)
  sqb_add_test(dirty.bench_smoke COMMAND dirty_bench --quick LABELS integration TIMEOUT 120)
endif()
