# The squib binary is linked static-pie where the static archives of its
# libraries exist (docs/fleet.md "Idle clone memory"): every VM is one squib
# process, and each shared library costs each process its own relocated GOT
# and .data pages.  Measured on an idle pooled squib: 216 KiB of anonymous
# memory dynamic, 144 KiB static-pie.  ASLR is kept (PIE).  Other programs
# (tests, tools) keep linking the shared libraries.
#
# Mechanism: the library targets' link interface names the shared library
# unless the target being linked sets the property SQB_STATIC_LINK, in which
# case it names the archive instead.
option(SQB_STATIC_SQUIB "Link the squib binary static-pie" ON)

# sqb_static_variant(<imported target> <archive path>)
function(sqb_static_variant tgt archive)
  get_target_property(libs ${tgt} INTERFACE_LINK_LIBRARIES)
  set(on "$<BOOL:$<TARGET_PROPERTY:SQB_STATIC_LINK>>")
  set(out "")
  foreach(l IN LISTS libs)
    list(APPEND out "$<$<NOT:${on}>:${l}>")
  endforeach()
  list(APPEND out "$<${on}:${archive}>")
  set_property(TARGET ${tgt} PROPERTY INTERFACE_LINK_LIBRARIES "${out}")
endfunction()

# sqb_static_link(<executable> <imported target> <archive name> ...):
# link the executable static-pie when every archive is found.
function(sqb_static_link exe)
  if(NOT SQB_STATIC_SQUIB OR SQB_SANITIZE OR SQB_TSAN OR SQB_FUZZ OR CMAKE_CROSSCOMPILING)
    return()
  endif()
  set(pairs ${ARGN})
  set(found "")
  while(pairs)
    list(POP_FRONT pairs tgt name)
    find_library(SQB_ARCHIVE_${name} NAMES ${name})
    if(NOT SQB_ARCHIVE_${name})
      message(STATUS "${exe}: ${name} not found, linking ${exe} dynamically")
      return()
    endif()
    list(APPEND found ${tgt} ${SQB_ARCHIVE_${name}})
  endwhile()
  while(found)
    list(POP_FRONT found tgt path)
    sqb_static_variant(${tgt} ${path})
  endwhile()
  set_target_properties(${exe} PROPERTIES SQB_STATIC_LINK ON)
  target_link_options(${exe} PRIVATE -static-pie)
  message(STATUS "${exe}: linked static-pie")
endfunction()
