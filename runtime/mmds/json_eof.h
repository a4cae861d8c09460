/* serde_json's words for JSON text that ends too early, shared by the MMDS
 * parser (mmds_json.c) and the API's (runtime/api/json_fields.c). */
#ifndef SQB_MMDS_JSON_EOF_H
#define SQB_MMDS_JSON_EOF_H

#include <stddef.h>

/* From what is open at the end of txt[0..len): "EOF while parsing a string",
 * "... an object", "... a list" or "... a value". */
const char *sqb_json_eof_what(const char *txt, size_t len);

#endif
