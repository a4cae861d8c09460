# squib-snap benchmark (bench/snap_tool_bench.c): merge / diff / verify of
# 1 GiB snapshots against a sequential read+write floor.  Run by hand:
#   build/bench/snap_tool_bench build/tools/squib-snap build/tests/tools/mkfixture
# Only the --quick smoke run is a ctest (label integration).
if(TARGET squib-snap AND TARGET mkfixture)
  add_executable(snap_tool_bench ${CMAKE_CURRENT_LIST_DIR}/snap_tool_bench.c)
  sqb_add_test(bench.snap_tool_quick
    COMMAND snap_tool_bench $<TARGET_FILE:squib-snap> $<TARGET_FILE:mkfixture> --quick
    LABELS integration TIMEOUT 300)
endif()
