if(TARGET sqb_runtime AND TARGET squib AND TARGET sqb_test_guests)
  # runtime_bench: squib (InstanceStart -> first serial byte, per-exit cost,
  # VMM RSS overhead) against runtime_floor, a bare-KVM create/run-to-HLT
  # program run in the same invocation.  Not a timing test: the ctest only
  # proves the --quick run works end to end.
  add_executable(runtime_floor runtime_floor.c)
  add_executable(runtime_bench runtime_bench.c)
  target_link_libraries(runtime_bench PRIVATE sqb_test_squib_client)
  add_dependencies(runtime_bench squib runtime_floor sqb_test_guests)
  set(SQB_RUNTIME_BENCH_GUESTS ${PROJECT_BINARY_DIR}/tests/runtime/guests)
  sqb_add_test(runtime.bench_smoke
    COMMAND runtime_bench $<TARGET_FILE:squib> $<TARGET_FILE:runtime_floor>
            ${SQB_RUNTIME_BENCH_GUESTS} --quick
    LABELS integration TIMEOUT 120)
endif()
