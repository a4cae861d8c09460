# snapshot_bench: squib snapshot create (pause window, Full / Diff at 1 %)
# and load (File-mmap, File-lazy, File-eager, Uffd) against a bare-KVM floor
# in the same run (docs/snapshots.md "Benchmark").  The ctest only proves
# the --quick run works end to end; it is not a timing test.
# Included from runtime/snapshot/CMakeLists.txt (bench/CMakeLists.txt does
# not list it yet); the guard keeps a second include harmless.
if(TARGET sqb_runtime AND TARGET sqb_snapshot_guests AND NOT TARGET snapshot_bench)
  add_executable(snapshot_bench ${PROJECT_SOURCE_DIR}/bench/snapshot_bench.c
                 ${PROJECT_SOURCE_DIR}/tests/runtime/squib_client.c)
  target_include_directories(snapshot_bench PRIVATE ${PROJECT_SOURCE_DIR}/tests/runtime)
  add_dependencies(snapshot_bench squib squib-pager sqb_snapshot_guests)
  sqb_add_test(snapshot.bench_smoke
    COMMAND snapshot_bench $<TARGET_FILE:squib> ${SNAP_GUEST_DIR} $<TARGET_FILE:squib-pager>
            --quick
    LABELS integration TIMEOUT 120)
endif()
