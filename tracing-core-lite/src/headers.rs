//! Reading a few headers of a request or response, for less than a hash lookup each.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Up to this many header values, one pass over a header map finds the few headers a span
/// reads for less than a hash lookup each (most requests and responses carry fewer); beyond
/// it, they are looked up.
pub const SCAN_LIMIT: usize = 12;

/// The first value of each of `names` in `headers`, as [`HeaderMap::get`] finds it: in one
/// pass over a map of up to [`SCAN_LIMIT`] values (a standard header name is compared as a
/// number, a custom one by its bytes), else by lookups.
///
/// ```
/// use http::{HeaderMap, HeaderName, header::HOST};
/// use tracing_core_lite::headers::first_values;
///
/// const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// let mut headers = HeaderMap::new();
/// headers.insert(HOST, "example.com".parse().unwrap());
/// let [host, status] = first_values(&headers, [&HOST, &GRPC_STATUS]);
/// assert_eq!(host.unwrap(), "example.com");
/// assert!(status.is_none());
/// ```
pub fn first_values<'a, const N: usize>(
    headers: &'a HeaderMap,
    names: [&HeaderName; N],
) -> [Option<&'a HeaderValue>; N] {
    if headers.len() > SCAN_LIMIT {
        return names.map(|name| headers.get(name));
    }
    let mut found = [None; N];
    for (name, value) in headers {
        if let Some(i) = names.iter().position(|wanted| *wanted == name) {
            found[i].get_or_insert(value);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HOST, USER_AGENT};

    #[test]
    fn scan_and_lookup_find_the_same_first_values() {
        let custom = HeaderName::from_static("x-custom");
        for filler in [0, SCAN_LIMIT + 1] {
            let mut h = HeaderMap::new();
            for i in 0..filler {
                h.insert(
                    HeaderName::try_from(format!("x-filler-{i}")).unwrap(),
                    HeaderValue::from_static("v"),
                );
            }
            h.append(HOST, HeaderValue::from_static("first"));
            h.append(HOST, HeaderValue::from_static("second"));
            h.append(custom.clone(), HeaderValue::from_static("c"));
            let [host, agent, c] = first_values(&h, [&HOST, &USER_AGENT, &custom]);
            assert_eq!(host.unwrap(), "first", "{filler}");
            assert!(agent.is_none());
            assert_eq!(c.unwrap(), "c");
        }
    }
}
