using System.Globalization;
using System.Text.Json;

namespace MaskRcnn.Net.Training;

/// <summary>
/// A JSON value with the file it came from and its JSONPath, so every accessor can report a
/// <see cref="DatasetFormatException"/> that names the file and the field at fault.
/// </summary>
internal readonly struct JsonCursor
{
    private static readonly System.Text.UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public JsonCursor(string file, string path, JsonElement element)
    {
        File = file;
        Path = path;
        Element = element;
    }

    public string File { get; }

    public string Path { get; }

    public JsonElement Element { get; }

    public JsonValueKind Kind => Element.ValueKind;

    public bool IsNull => Element.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined;

    /// <summary>Parses a whole JSON file; syntax errors become a <see cref="DatasetFormatException"/> with line and position.</summary>
    public static JsonDocument ParseFile(string file, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (!System.IO.File.Exists(file))
        {
            throw new FileNotFoundException($"annotation file {file} does not exist", file);
        }

        var bytes = System.IO.File.ReadAllBytes(file);
        var start = bytes.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? 3 : 0;
        CheckUtf8(file, bytes, start);
        try
        {
            return JsonDocument.Parse(bytes.AsMemory(start),
                new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip, MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            var where = e.LineNumber is { } line
                ? $"line {line + 1}, byte {(e.BytePositionInLine ?? 0) + 1}"
                : null;
            throw new DatasetFormatException(file, where, $"invalid JSON: {e.Message}", e);
        }
    }

    /// <summary>
    /// JSON text must be UTF-8 (RFC 8259). System.Text.Json checks strings only when they are read, so an invalid
    /// byte inside a string would otherwise surface later as an <see cref="InvalidOperationException"/>.
    /// </summary>
    private static void CheckUtf8(string file, byte[] bytes, int start)
    {
        try
        {
            _ = StrictUtf8.GetCharCount(bytes, start, bytes.Length - start);
        }
        catch (System.Text.DecoderFallbackException e)
        {
            var at = e.Index >= 0 && start + e.Index < bytes.Length ? start + e.Index : -1;
            string? where = null;
            if (at >= 0)
            {
                var before = bytes.AsSpan(0, at);
                where = $"line {before.Count((byte)'\n') + 1}, byte {at - before.LastIndexOf((byte)'\n')}";
            }

            throw new DatasetFormatException(file, where,
                at >= 0 ? $"the file is not valid UTF-8 (byte 0x{bytes[at]:X2} at offset {at}); JSON files must be UTF-8" : "the file is not valid UTF-8",
                e);
        }
    }

    public static JsonCursor Root(string file, JsonDocument document) => new(file, "$", document.RootElement);

    public DatasetFormatException Error(string reason, Exception? inner = null) => new(File, Path, reason, inner);

    public static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };

    private string ShowValue()
    {
        var text = Element.GetRawText();
        return text.Length > 40 ? text[..40] + "…" : text;
    }

    public DatasetFormatException TypeError(string expected) =>
        Error($"expected {expected}, found {Describe(Kind)} ({ShowValue()})");

    public static string Child(string path, string name)
    {
        var simple = name.Length > 0 && (char.IsLetter(name[0]) || name[0] == '_') && name.All(c => char.IsLetterOrDigit(c) || c == '_');
        return simple ? $"{path}.{name}" : $"{path}['{name.Replace("'", "\\'", StringComparison.Ordinal)}']";
    }

    // ---- objects -----------------------------------------------------------------------------------------------

    public JsonCursor ExpectObject() => Kind == JsonValueKind.Object ? this : throw TypeError("an object");

    public JsonCursor Get(string name)
    {
        ExpectObject();
        return Element.TryGetProperty(name, out var value)
            ? new JsonCursor(File, Child(Path, name), value)
            : throw new DatasetFormatException(File, Child(Path, name), "required field is missing");
    }

    public bool TryGet(string name, out JsonCursor value)
    {
        ExpectObject();
        if (Element.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null)
        {
            value = new JsonCursor(File, Child(Path, name), v);
            return true;
        }

        value = default;
        return false;
    }

    public bool Has(string name) => Kind == JsonValueKind.Object && Element.TryGetProperty(name, out _);

    public IReadOnlyList<(string Name, JsonCursor Value)> Properties()
    {
        ExpectObject();
        var result = new List<(string Name, JsonCursor Value)>();
        foreach (var p in Element.EnumerateObject())
        {
            string name;
            try
            {
                name = p.Name;
            }
            catch (InvalidOperationException e)
            {
                // An escaped lone surrogate (\ud800) is valid JSON syntax but not a string.
                throw Error($"property #{result.Count} has a name that is not valid Unicode: {e.Message}", e);
            }

            result.Add((name, new JsonCursor(File, Child(Path, name), p.Value)));
        }

        return result;
    }

    // ---- arrays ------------------------------------------------------------------------------------------------

    public int ArrayLength => Kind == JsonValueKind.Array ? Element.GetArrayLength() : throw TypeError("an array");

    public JsonCursor At(int index) => new(File, $"{Path}[{index}]", Element[index]);

    public IEnumerable<JsonCursor> Items()
    {
        var n = ArrayLength;
        for (var i = 0; i < n; i++)
        {
            yield return At(i);
        }
    }

    // ---- scalars -----------------------------------------------------------------------------------------------

    public string GetString()
    {
        if (Kind != JsonValueKind.String)
        {
            throw TypeError("a string");
        }

        try
        {
            return Element.GetString()!;
        }
        catch (InvalidOperationException e)
        {
            // An escaped lone surrogate (\ud800) is valid JSON syntax but not a string.
            throw Error($"the string is not valid Unicode: {e.Message}", e);
        }
    }

    public string GetNonEmptyString()
    {
        var s = GetString();
        return s.Length > 0 ? s : throw Error("must not be empty");
    }

    /// <summary>A non-empty file name that can be a path (no NUL character, which no file system accepts).</summary>
    public string GetFileName()
    {
        var s = GetNonEmptyString();
        return s.Contains('\0', StringComparison.Ordinal) ? throw Error("a file name must not contain a NUL character") : s;
    }

    /// <summary>A finite number (JSON has no NaN/Infinity literals; values that overflow a double are rejected).</summary>
    public double GetDouble()
    {
        if (Kind != JsonValueKind.Number)
        {
            throw TypeError("a number");
        }

        return Element.TryGetDouble(out var d) && double.IsFinite(d) ? d : throw Error($"number {ShowValue()} is not a finite double");
    }

    public long GetInt64()
    {
        if (Kind != JsonValueKind.Number)
        {
            throw TypeError("an integer");
        }

        if (Element.TryGetInt64(out var v))
        {
            return v;
        }

        // Accept integral values written as 5.0.
        if (Element.TryGetDouble(out var d) && Math.Floor(d) == d && Math.Abs(d) < 9e15)
        {
            return (long)d;
        }

        throw Error($"expected an integer, found {ShowValue()}");
    }

    public int GetInt32()
    {
        var v = GetInt64();
        return v is >= int.MinValue and <= int.MaxValue ? (int)v : throw Error($"integer {v} is out of range");
    }

    public int GetPositiveInt32()
    {
        var v = GetInt32();
        return v > 0 ? v : throw Error($"must be positive, found {v}");
    }

    /// <summary>A boolean written as true/false or 0/1 (COCO's <c>iscrowd</c> is an integer).</summary>
    public bool GetFlag() => Kind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Number => GetInt64() switch
        {
            0 => false,
            1 => true,
            var v => throw Error($"expected 0 or 1, found {v}"),
        },
        _ => throw TypeError("0, 1, true or false"),
    };

    /// <summary>An array of finite numbers.</summary>
    public double[] GetDoubleArray()
    {
        var n = ArrayLength;
        var result = new double[n];
        for (var i = 0; i < n; i++)
        {
            result[i] = At(i).GetDouble();
        }

        return result;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{File}: {Path}");
}
