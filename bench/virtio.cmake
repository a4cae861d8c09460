if(TARGET sqb_test_virtio_util)
  # vsock_rx_bench: the vsock RX path, one read per buffer against batched
  # reads, in one run (docs/network.md).  A program, not a test.
  add_executable(vsock_rx_bench vsock_rx_bench.c)
  target_link_libraries(vsock_rx_bench PRIVATE sqb_test_virtio_util sqb_virtio sqb_common
                        Threads::Threads)
  target_include_directories(vsock_rx_bench PRIVATE ${PROJECT_SOURCE_DIR}/tests/virtio
                             ${PROJECT_SOURCE_DIR}/runtime/virtio)
endif()
