# fleet_bench (docs/fleet.md "Numbers"): clone latency with and without a
# pre-warmed pool, wall time for N clones of one snapshot and PSS per idle
# clone, each against a bare-KVM floor (VM + MAP_PRIVATE mapping) measured
# in the same run.  The ctest only proves a --tiny run works end to end.
if(TARGET squib AND TARGET sqb_fleet_util AND TARGET sqb_fleet_guest AND NOT TARGET fleet_bench)
  add_executable(fleet_bench fleet_bench.c)
  target_link_libraries(fleet_bench PRIVATE sqb_fleet_util)
  add_dependencies(fleet_bench squib sqb_fleet_guest)
  sqb_add_test(fleet.bench_smoke
    COMMAND fleet_bench $<TARGET_FILE:squib> ${SQB_FLEET_GUEST} --tiny
    LABELS integration TIMEOUT 180)
endif()
