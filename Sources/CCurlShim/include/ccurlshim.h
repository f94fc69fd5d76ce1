// Non-variadic wrappers around libcurl's variadic curl_easy_setopt / curl_easy_getinfo,
// which Swift cannot call directly. Each wrapper passes exactly one argument of one type.
#ifndef LLMFT_CCURLSHIM_H
#define LLMFT_CCURLSHIM_H

#include <curl/curl.h>
#include <stddef.h>

typedef size_t (*llmft_data_fn)(char *ptr, size_t size, size_t nmemb, void *userdata);
typedef int (*llmft_xferinfo_fn)(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                                 curl_off_t ultotal, curl_off_t ulnow);

CURLcode llmft_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode llmft_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode llmft_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode llmft_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);

/// Sets CURLOPT_WRITEFUNCTION and CURLOPT_WRITEDATA.
CURLcode llmft_curl_set_write_callback(CURL *handle, llmft_data_fn fn, void *userdata);
/// Sets CURLOPT_HEADERFUNCTION and CURLOPT_HEADERDATA.
CURLcode llmft_curl_set_header_callback(CURL *handle, llmft_data_fn fn, void *userdata);
/// Sets CURLOPT_XFERINFOFUNCTION and CURLOPT_XFERINFODATA, and turns CURLOPT_NOPROGRESS off.
CURLcode llmft_curl_set_xferinfo_callback(CURL *handle, llmft_xferinfo_fn fn, void *userdata);

CURLcode llmft_curl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode llmft_curl_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value);
CURLcode llmft_curl_getinfo_string(CURL *handle, CURLINFO info, const char **value);

#endif
