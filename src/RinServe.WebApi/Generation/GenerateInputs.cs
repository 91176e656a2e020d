using System.Text;
using System.Text.Json;
using Microsoft.Net.Http.Headers;
using RinServe.Diffusion;

namespace RinServe.WebApi.Generation;

/// <summary>
/// Reads the parameters of POST /generate from the query and the JSON body into name → text. Rejects unknown or
/// repeated names, wrong JSON types, junk JSON, other media types and oversized bodies, each naming what is wrong.
/// </summary>
public static class GenerateInputs
{
    /// <summary>The body is read in chunks of this size, so an oversized one stops at its limit.</summary>
    private const int ReadChunkBytes = 8192;

    /// <summary>The body is one flat object; deeper nesting is junk and is not parsed further.</summary>
    private const int MaxJsonDepth = 8;

    private static readonly string Allowed = string.Join(", ", GenerateParameters.Names);

    public static async Task<(Dictionary<string, string>? Inputs, IResult? Problem)> ReadAsync(HttpRequest request, long maxBody, CancellationToken ct)
    {
        var inputs = new Dictionary<string, string>(StringComparer.Ordinal);
        if (ReadQuery(request.Query, inputs) is { } queryProblem)
        {
            return (null, queryProblem);
        }
        var hasBody = request.ContentLength > 0 || (request.ContentLength is null && request.Headers.TransferEncoding.Count > 0);
        if (!hasBody)
        {
            return (inputs, null);
        }
        var (json, bodyProblem) = await ReadBodyAsync(request, maxBody, ct);
        if (bodyProblem is not null)
        {
            return (null, bodyProblem);
        }
        return ReadJsonFields(json!, inputs) is { } fieldProblem ? (null, fieldProblem) : (inputs, null);
    }

    private static IResult? ReadQuery(IQueryCollection query, Dictionary<string, string> inputs)
    {
        foreach (var (name, values) in query)
        {
            if (string.IsNullOrWhiteSpace(name))
            {
                return Problems.BadParameter("query", $"a query parameter has no name (as in '&=1'); allowed: {Allowed}");
            }
            var key = name.ToLowerInvariant();
            if (!GenerateParameters.Names.Contains(key))
            {
                return Problems.BadParameter(name, $"unknown parameter '{UserText.Shorten(name)}'; allowed: {Allowed}");
            }
            if (values.Count != 1)
            {
                return Problems.BadParameter(key, $"{key} is given {values.Count} times; give it once");
            }
            inputs[key] = values.ToString();
        }
        return null;
    }

    /// <summary>The body as UTF-8 JSON bytes: JSON media type, within the size limit, readable, in a supported charset.</summary>
    private static async Task<(byte[]? Json, IResult? Problem)> ReadBodyAsync(HttpRequest request, long maxBody, CancellationToken ct)
    {
        if (!request.HasJsonContentType())
        {
            return (null, Problems.Problem(StatusCodes.Status415UnsupportedMediaType, "Unsupported media type",
                $"the body must be JSON (Content-Type: application/json), not '{UserText.Shorten(request.ContentType ?? "none")}'", "body"));
        }
        if (request.ContentLength > maxBody)
        {
            return (null, TooLarge(maxBody));
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[ReadChunkBytes];
        int read;
        try
        {
            while ((read = await request.Body.ReadAsync(chunk, ct)) > 0)
            {
                if (buffer.Length + read > maxBody)
                {
                    return (null, TooLarge(maxBody));
                }
                buffer.Write(chunk, 0, read);
            }
        }
        catch (IOException ex) when (ex is not BadHttpRequestException)
        {
            // Kestrel reports a chunk size that overflows as a bare IOException ("Bad chunk size data."), not as the
            // BadHttpRequestException of its other framing errors (those keep their status in ProblemExceptionHandler).
            return (null, Problems.BadParameter("body", $"the body could not be read: {ex.Message}"));
        }
        return ToUtf8(buffer.ToArray(), request.ContentType);
    }

    /// <summary>Adds the fields of the JSON object to <paramref name="inputs"/>; numbers and strings only, each name once.</summary>
    private static IResult? ReadJsonFields(byte[] json, Dictionary<string, string> inputs)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = MaxJsonDepth });
        }
        catch (JsonException ex)
        {
            return Problems.BadParameter("body", $"the body is not valid JSON: {ex.Message}");
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return Problems.BadParameter("body", $"the body must be a JSON object with the fields {Allowed}");
            }
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (ReadJsonField(property, inputs) is { } problem)
                {
                    return problem;
                }
            }
        }
        return null;
    }

    private static IResult? ReadJsonField(JsonProperty property, Dictionary<string, string> inputs)
    {
        if (!TryText(() => property.Name, out var propertyName))
        {
            return Problems.BadParameter("body", "a field name of the body is not valid Unicode (a lone surrogate such as \\ud800, or invalid UTF-8)");
        }
        if (string.IsNullOrWhiteSpace(propertyName))
        {
            return Problems.BadParameter("body", $"a field of the body has no name (as in {{\"\":1}}); allowed: {Allowed}");
        }
        var key = propertyName.ToLowerInvariant();
        if (!GenerateParameters.Names.Contains(key))
        {
            return Problems.BadParameter(propertyName, $"unknown field '{UserText.Shorten(propertyName)}'; allowed: {Allowed}");
        }
        if (inputs.ContainsKey(key))
        {
            return Problems.BadParameter(key, $"{key} is given twice (query and body, or twice in the body); give it once");
        }
        switch (property.Value.ValueKind)
        {
            case JsonValueKind.String when TryText(() => property.Value.GetString()!, out var text):
                inputs[key] = text;
                return null;
            case JsonValueKind.String:
                return Problems.BadParameter(key, $"{key} is not valid Unicode (a lone surrogate such as \\ud800, or invalid UTF-8)");
            case JsonValueKind.Number:
                inputs[key] = property.Value.GetRawText();
                return null;
            case JsonValueKind.Null:
                return null;
            default:
                return Problems.BadParameter(key, $"{key} must be a number or a string, not a JSON {property.Value.ValueKind.ToString().ToLowerInvariant()}");
        }
    }

    /// <summary>Reads a JSON string, which throws when it holds a lone surrogate escape or invalid UTF-8.</summary>
    private static bool TryText(Func<string> read, out string text)
    {
        try
        {
            text = read();
            return true;
        }
        catch (InvalidOperationException)
        {
            text = "";
            return false;
        }
    }

    /// <summary>The body as UTF-8, decoded from the Content-Type charset (UTF-8 when none is named, RFC 8259).</summary>
    private static (byte[] Json, IResult? Problem) ToUtf8(byte[] body, string? contentType)
    {
        var charset = MediaTypeHeaderValue.TryParse(contentType, out var mediaType) ? mediaType.Charset.Value?.Trim('"') : null;
        if (string.IsNullOrEmpty(charset) || charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase))
        {
            return (body, null);
        }
        Encoding encoding;
        try
        {
            encoding = Encoding.GetEncoding(charset, EncoderFallback.ExceptionFallback, DecoderFallback.ExceptionFallback);
        }
        catch (Exception ex) when (ex is ArgumentException or NotSupportedException)
        {
            // NotSupportedException: a charset .NET knows but has disabled (UTF-7).
            return (body, Problems.Problem(StatusCodes.Status415UnsupportedMediaType, "Unsupported media type",
                $"unsupported charset '{UserText.Shorten(charset)}'; send the JSON as UTF-8 (or UTF-16, UTF-32)", "body"));
        }
        try
        {
            var text = encoding.GetString(body);
            return (Encoding.UTF8.GetBytes(text.StartsWith('\uFEFF') ? text[1..] : text), null);
        }
        catch (DecoderFallbackException)
        {
            return (body, Problems.BadParameter("body", $"the body is not valid {encoding.WebName}, as its Content-Type charset says"));
        }
    }

    private static ProblemHttpResult TooLarge(long maxBody) =>
        Problems.Problem(StatusCodes.Status413PayloadTooLarge, "Body too large", $"the body may be at most {maxBody} bytes", "body");
}
