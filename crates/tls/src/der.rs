//! Just enough DER to read what the prerequisite checks need from an X.509
//! certificate: subject alternative names, validity, whether it is self-issued.

use crate::TlsError;

/// Facts about one X.509 certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// DNS names as written, IP addresses in their textual form.
    pub sans: Vec<String>,
    /// The subject's common name, when it has one.
    pub common_name: Option<String>,
    /// Validity start, seconds since the Unix epoch.
    pub not_before: i64,
    /// Validity end, seconds since the Unix epoch.
    pub not_after: i64,
    /// Issuer and subject are the same name.
    pub self_signed: bool,
}

struct Tlv<'a> {
    tag: u8,
    value: &'a [u8],
    /// The whole element, header included.
    raw: &'a [u8],
}

struct Reader<'a> {
    rest: &'a [u8],
}

fn bad(what: &str) -> TlsError {
    TlsError::Der(what.to_string())
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn next(&mut self) -> Result<Tlv<'a>, TlsError> {
        let input = self.rest;
        let (&tag, after_tag) = input.split_first().ok_or_else(|| bad("truncated"))?;
        if tag & 0x1f == 0x1f {
            return Err(bad("high tag numbers are not used in certificates"));
        }
        let (&first, mut after_len) = after_tag.split_first().ok_or_else(|| bad("truncated"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(bad("unsupported length"));
            }
            let (len_bytes, rest) = after_len
                .split_at_checked(n)
                .ok_or_else(|| bad("truncated"))?;
            after_len = rest;
            len_bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        let (value, rest) = after_len
            .split_at_checked(len)
            .ok_or_else(|| bad("length exceeds the data"))?;
        let header = input.len() - after_len.len();
        let raw = input
            .get(..header + len)
            .ok_or_else(|| bad("length exceeds the data"))?;
        self.rest = rest;
        Ok(Tlv { tag, value, raw })
    }

    fn expect(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>, TlsError> {
        let tlv = self.next()?;
        if tlv.tag != tag {
            return Err(TlsError::Der(format!(
                "expected {what} (tag {tag:#04x}), found tag {:#04x}",
                tlv.tag
            )));
        }
        Ok(tlv)
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// 2.5.29.17 subjectAltName
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
/// 2.5.4.3 commonName
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];

/// Parses a DER certificate.
pub fn parse_cert_der(der: &[u8]) -> Result<CertInfo, TlsError> {
    let mut outer = Reader::new(der);
    let cert = outer.expect(SEQUENCE, "Certificate")?;
    let mut cert = Reader::new(cert.value);
    let tbs = cert.expect(SEQUENCE, "TBSCertificate")?;
    let mut tbs = Reader::new(tbs.value);
    if tbs.peek_tag() == Some(0xa0) {
        tbs.next()?; // version
    }
    tbs.next()?; // serialNumber
    tbs.expect(SEQUENCE, "signature algorithm")?;
    let issuer = tbs.expect(SEQUENCE, "issuer")?;
    let validity = tbs.expect(SEQUENCE, "validity")?;
    let subject = tbs.expect(SEQUENCE, "subject")?;
    tbs.expect(SEQUENCE, "subjectPublicKeyInfo")?;
    let mut sans = Vec::new();
    while !tbs.is_empty() {
        let item = tbs.next()?;
        if item.tag == 0xa3 {
            sans = parse_extensions(item.value)?;
        }
    }
    let mut validity = Reader::new(validity.value);
    let not_before = parse_time(&validity.next()?)?;
    let not_after = parse_time(&validity.next()?)?;
    Ok(CertInfo {
        sans,
        common_name: common_name(subject.value)?,
        not_before,
        not_after,
        self_signed: issuer.raw == subject.raw,
    })
}

fn parse_extensions(explicit: &[u8]) -> Result<Vec<String>, TlsError> {
    let mut wrapper = Reader::new(explicit);
    let list = wrapper.expect(SEQUENCE, "extensions")?;
    let mut list = Reader::new(list.value);
    while !list.is_empty() {
        let ext = list.expect(SEQUENCE, "extension")?;
        let mut ext = Reader::new(ext.value);
        let oid = ext.expect(OID, "extension id")?;
        if ext.peek_tag() == Some(BOOLEAN) {
            ext.next()?;
        }
        let value = ext.expect(OCTET_STRING, "extension value")?;
        if oid.value == OID_SAN {
            return parse_general_names(value.value);
        }
    }
    Ok(Vec::new())
}

fn parse_general_names(bytes: &[u8]) -> Result<Vec<String>, TlsError> {
    let mut outer = Reader::new(bytes);
    let names = outer.expect(SEQUENCE, "GeneralNames")?;
    let mut names = Reader::new(names.value);
    let mut out = Vec::new();
    while !names.is_empty() {
        let name = names.next()?;
        match name.tag {
            0x82 => out.push(String::from_utf8_lossy(name.value).into_owned()),
            0x87 => match name.value.len() {
                4 => {
                    let mut a = [0u8; 4];
                    a.copy_from_slice(name.value);
                    out.push(std::net::Ipv4Addr::from(a).to_string());
                }
                16 => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(name.value);
                    out.push(std::net::Ipv6Addr::from(a).to_string());
                }
                _ => return Err(bad("IP address SAN of odd length")),
            },
            _ => {}
        }
    }
    Ok(out)
}

fn common_name(name: &[u8]) -> Result<Option<String>, TlsError> {
    let mut rdns = Reader::new(name);
    while !rdns.is_empty() {
        let set = rdns.expect(SET, "relative distinguished name")?;
        let mut set = Reader::new(set.value);
        while !set.is_empty() {
            let atv = set.expect(SEQUENCE, "attribute")?;
            let mut atv = Reader::new(atv.value);
            let oid = atv.expect(OID, "attribute type")?;
            let value = atv.next()?;
            if oid.value == OID_CN {
                return Ok(Some(String::from_utf8_lossy(value.value).into_owned()));
            }
        }
    }
    Ok(None)
}

fn digits(s: &[u8]) -> Result<i64, TlsError> {
    let mut n = 0i64;
    for &b in s {
        if !b.is_ascii_digit() {
            return Err(bad("time with a non-digit"));
        }
        n = n * 10 + i64::from(b - b'0');
    }
    Ok(n)
}

fn parse_time(t: &Tlv<'_>) -> Result<i64, TlsError> {
    let v = t.value;
    let (year, rest) = match t.tag {
        UTC_TIME => {
            let yy = digits(v.get(..2).ok_or_else(|| bad("short time"))?)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &v[2..])
        }
        GENERALIZED_TIME => (
            digits(v.get(..4).ok_or_else(|| bad("short time"))?)?,
            &v[4..],
        ),
        _ => return Err(bad("validity is not a time")),
    };
    if rest.len() != 11 || rest.last() != Some(&b'Z') {
        return Err(bad("time is not YYMMDDHHMMSSZ"));
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let hour = digits(&rest[4..6])?;
    let min = digits(&rest[6..8])?;
    let sec = digits(&rest[8..10])?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return Err(bad("time out of range"));
    }
    let days = days_from_civil(year, month, day).ok_or_else(|| bad("no such day"))?;
    Ok(days * 86_400 + hour * 3600 + min * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (`None` for a day the
/// month does not have).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    let date = time::Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?)
        .ok()?;
    Some(
        date.midnight()
            .assume_utc()
            .unix_timestamp()
            .div_euclid(86_400),
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let d = time::OffsetDateTime::from_unix_timestamp(z.saturating_mul(86_400))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .date();
    (d.year(), u8::from(d.month()), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), Some(0));
        assert_eq!(days_from_civil(2000, 3, 1), Some(11_017));
        assert_eq!(days_from_civil(2023, 2, 29), None);
        for z in [-1000, 0, 59, 60, 11_016, 11_017, 19_000, 50_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y.into(), m.into(), d.into()), Some(z));
        }
    }

    #[test]
    fn truncated_input_is_an_error() {
        assert!(parse_cert_der(&[]).is_err());
        assert!(parse_cert_der(&[0x30, 0x82, 0xff]).is_err());
        assert!(parse_cert_der(&[0x30, 0x03, 0x30, 0x01]).is_err());
        assert!(parse_cert_der(&[0x30, 0x00]).is_err());
    }

    #[test]
    fn reads_ip_and_dns_sans_and_times() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![
            "sip.contoso.com".to_string(),
            "10.1.2.3".into(),
            "2001:db8::1".into(),
        ])
        .unwrap();
        params.not_before = rcgen::date_time_ymd(2024, 2, 29);
        params.not_after = rcgen::date_time_ymd(2051, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        let info = parse_cert_der(cert.der().as_ref()).unwrap();
        assert_eq!(
            info.sans,
            vec!["sip.contoso.com", "10.1.2.3", "2001:db8::1"]
        );
        assert_eq!(
            info.not_before,
            days_from_civil(2024, 2, 29).unwrap_or(0) * 86_400
        );
        assert_eq!(
            info.not_after,
            days_from_civil(2051, 1, 1).unwrap_or(0) * 86_400
        );
        assert!(info.self_signed);
    }
}
