# Confinement tests (docs/security.md, docs/jailer.md): squib's seccomp
# filters, and squib started through squib-jailer.
add_executable(test_runtime_seccomp test_seccomp.c)
target_include_directories(test_runtime_seccomp PRIVATE ${PROJECT_SOURCE_DIR}/runtime
                           ${PROJECT_SOURCE_DIR}/runtime/seccomp)
if(SQB_SECCOMP_PREBUILT) # the programs squib carries are checked against a fresh build
  target_sources(test_runtime_seccomp PRIVATE ${PROJECT_SOURCE_DIR}/runtime/seccomp/seccomp_build.c)
  target_compile_definitions(test_runtime_seccomp PRIVATE SQB_SECCOMP_PREBUILT)
endif()
target_link_libraries(test_runtime_seccomp PRIVATE sqb_runtime sqb_test_squib_client
                      PkgConfig::CMOCKA PkgConfig::SECCOMP)
add_dependencies(test_runtime_seccomp squib sqb_test_guests)
sqb_add_test(runtime.seccomp COMMAND test_runtime_seccomp $<TARGET_FILE:squib> ${SQB_GUEST_DIR}
  LABELS integration TIMEOUT 120)

add_executable(test_runtime_jailer test_jailer.c)
target_link_libraries(test_runtime_jailer PRIVATE sqb_test_squib_client PkgConfig::CMOCKA)
add_dependencies(test_runtime_jailer squib squib-jailer sqb_test_guests)
foreach(mode plain cgroup)
  sqb_add_test(runtime.jailer_${mode} COMMAND test_runtime_jailer $<TARGET_FILE:squib-jailer>
    $<TARGET_FILE:squib> ${SQB_GUEST_DIR}/counter.elf ${mode} LABELS integration TIMEOUT 120)
endforeach()

# squib-jailer against Firecracker's test_jail.py (exit codes, error texts,
# the chroot's files, pid file, limits, namespaces, cgroup v2); root only
add_executable(test_runtime_jailer_fc test_jailer_fc.c)
target_link_libraries(test_runtime_jailer_fc PRIVATE sqb_test_squib_client PkgConfig::CMOCKA)
add_dependencies(test_runtime_jailer_fc squib squib-jailer sqb_test_guests)
sqb_add_test(runtime.jailer_fc COMMAND test_runtime_jailer_fc $<TARGET_FILE:squib-jailer>
  $<TARGET_FILE:squib> ${SQB_GUEST_DIR} LABELS integration TIMEOUT 60)
