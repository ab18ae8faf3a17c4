//! `/echo`: a request described back as JSON, in httpbin's shape, so a client's tests can
//! check what it really sent: method, path, query (`args`), headers, and the body decoded by
//! its content type — JSON (`json`), urlencoded or multipart form fields (`form`), multipart
//! files (`files`), anything else as text (`data`). Also the query and form parsing the
//! other routes share.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::request::Parts;
use serde_json::{Map, Value, json};

/// `name=value&...` pairs into a JSON object; a repeated name becomes a list of its values.
pub fn pairs(encoded: &[u8]) -> Map<String, Value> {
    let mut map = Map::new();
    for (name, value) in form_urlencoded::parse(encoded) {
        let value = Value::String(value.into_owned());
        match map.get_mut(name.as_ref()) {
            None => {
                map.insert(name.into_owned(), value);
            }
            Some(Value::Array(values)) => values.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
        }
    }
    map
}

/// The request's query string as a JSON object (see [`pairs`]).
pub fn query(parts: &Parts) -> Map<String, Value> {
    pairs(parts.uri.query().unwrap_or("").as_bytes())
}

/// The first value of a query parameter.
pub fn query_value(parts: &Parts, name: &str) -> Option<String> {
    form_urlencoded::parse(parts.uri.query()?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The media type of the request body, lowercased, without parameters.
pub fn media_type(parts: &Parts) -> String {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Describes the request as JSON. A body that does not parse as its content type says so in
/// `error` instead of failing the request: the echo is for looking at what was sent.
pub async fn describe(parts: &Parts, body: Bytes) -> Value {
    let mut headers = Map::new();
    for name in parts.headers.keys() {
        let values: Vec<String> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        headers.insert(name.as_str().to_string(), Value::String(values.join(", ")));
    }
    let mut described = json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "url": parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
        "version": format!("{:?}", parts.version),
        "args": query(parts),
        "headers": headers,
        "json": null,
        "form": {},
        "files": {},
        "data": "",
        "bytes": body.len(),
    });
    let media_type = media_type(parts);
    if body.is_empty() {
        return described;
    }
    if media_type == "application/x-www-form-urlencoded" {
        described["form"] = Value::Object(pairs(&body));
    } else if media_type == "multipart/form-data" {
        match multipart(parts, body).await {
            Ok((form, files)) => {
                described["form"] = Value::Object(form);
                described["files"] = Value::Object(files);
            }
            Err(error) => described["error"] = json!(format!("bad multipart body: {error}")),
        }
    } else if media_type == "application/json" || media_type.ends_with("+json") {
        match serde_json::from_slice::<Value>(&body) {
            Ok(value) => described["json"] = value,
            Err(error) => described["error"] = json!(format!("bad JSON body: {error}")),
        }
    } else {
        described["data"] = json!(String::from_utf8_lossy(&body));
    }
    described
}

type Fields = (Map<String, Value>, Map<String, Value>);

/// Multipart parts: those without a file name go to the form fields (text), the others to
/// the files (`{filename, contentType, size, content}`).
async fn multipart(parts: &Parts, body: Bytes) -> Result<Fields, multer::Error> {
    let content_type = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type)?;
    let stream = futures_util::stream::once(async { Ok::<_, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let (mut form, mut files) = (Map::new(), Map::new());
    while let Some(field) = multipart.next_field().await? {
        let name = field.name().unwrap_or("").to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(|mime| mime.to_string());
        let content = field.bytes().await?;
        let text = String::from_utf8_lossy(&content).into_owned();
        match filename {
            None => {
                form.insert(name, Value::String(text));
            }
            Some(filename) => {
                files.insert(
                    name,
                    json!({
                        "filename": filename,
                        "contentType": content_type,
                        "size": content.len(),
                        "content": text,
                    }),
                );
            }
        }
    }
    Ok((form, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, content_type: &str) -> Parts {
        http::Request::post(uri)
            .header(CONTENT_TYPE, content_type)
            .header("x-a", "1")
            .header("x-a", "2")
            .body(())
            .expect("request")
            .into_parts()
            .0
    }

    #[tokio::test]
    async fn describes_query_headers_and_each_body_kind() {
        let json_request = parts("/echo?q=1&q=2&x=%20y", "application/json; charset=utf-8");
        let described = describe(&json_request, Bytes::from_static(br#"{"a":[1]}"#)).await;
        assert_eq!(described["args"], json!({"q": ["1", "2"], "x": " y"}));
        assert_eq!(described["headers"]["x-a"], "1, 2");
        assert_eq!(described["json"], json!({"a": [1]}));
        assert_eq!(described["bytes"], 9);
        assert_eq!(described["url"], "/echo?q=1&q=2&x=%20y");

        let form = parts("/echo", "application/x-www-form-urlencoded");
        let described = describe(&form, Bytes::from_static(b"a=1&b=two+words")).await;
        assert_eq!(described["form"], json!({"a": "1", "b": "two words"}));

        let body = "--XX\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
                    --XX\r\nContent-Disposition: form-data; name=\"up\"; filename=\"a.txt\"\r\n\
                    Content-Type: text/plain\r\n\r\nfile body\r\n--XX--\r\n";
        let multipart = parts("/echo", "multipart/form-data; boundary=XX");
        let described = describe(&multipart, Bytes::from(body)).await;
        assert_eq!(described["form"], json!({"note": "hello"}));
        assert_eq!(
            described["files"]["up"],
            json!({"filename": "a.txt", "contentType": "text/plain", "size": 9, "content": "file body"})
        );

        let text = parts("/echo", "text/plain");
        let described = describe(&text, Bytes::from_static(b"raw")).await;
        assert_eq!(described["data"], "raw");

        let broken = describe(&json_request, Bytes::from_static(b"{nope")).await;
        assert!(broken["error"].as_str().is_some_and(|e| e.contains("JSON")));
    }
}
