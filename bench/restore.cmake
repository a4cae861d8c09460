if(TARGET sqb_restore)
  # restore_bench: first access, per-fault service vs bare UFFDIO_COPY, lazy vs
  # eager convergence, working-set prefetch, mmap setup; PASS/MISS per target.
  # Not a timing test: the ctest only proves the --quick run works.
  add_executable(restore_bench restore_bench.c)
  target_include_directories(restore_bench PRIVATE ${PROJECT_SOURCE_DIR}/tests/snapfmt)
  target_link_libraries(restore_bench PRIVATE sqb_restore sqb_snapfmt Threads::Threads)
  sqb_add_test(restore.bench_smoke COMMAND restore_bench --quick LABELS integration TIMEOUT 120)
endif()
