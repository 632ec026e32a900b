//! The OpenAI error envelope: `{"error": {"message", "type", "code", "param"}}`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub code: Option<String>,
    pub param: Option<String>,
}

impl ErrorEnvelope {
    pub fn new(kind: &str, code: &str, message: impl Into<String>, param: Option<&str>) -> Self {
        ErrorEnvelope {
            error: ErrorBody {
                message: message.into(),
                kind: kind.to_owned(),
                code: Some(code.to_owned()),
                param: param.map(str::to_owned),
            },
        }
    }

    /// Serialized JSON. Serializing four strings cannot fail; a fallback keeps that true.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"error":{"message":"internal error","type":"server_error","code":"internal","param":null}}"#.to_vec()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_has_openai_shape() {
        let e = ErrorEnvelope::new("invalid_request_error", "invalid_request", "bad", Some("model"));
        let v: serde_json::Value = serde_json::from_slice(&e.to_json()).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "invalid_request");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["message"], "bad");
    }
}
