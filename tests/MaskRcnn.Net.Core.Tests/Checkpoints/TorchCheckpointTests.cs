using MaskRcnn.Net.Core.Checkpoints;

namespace MaskRcnn.Net.Core.Tests.Checkpoints;

[Collection(CheckpointCollection.Name)]
public class TorchCheckpointTests(CheckpointFiles files)
{
    [Theory]
    [InlineData("basic_zip.pt", TorchCheckpointFormat.Zip)]
    [InlineData("basic_legacy.pt", TorchCheckpointFormat.Legacy)]
    [InlineData("basic_proto4_zip.pt", TorchCheckpointFormat.Zip)]
    [InlineData("model_zip.pt", TorchCheckpointFormat.Zip)]
    [InlineData("model_legacy.pt", TorchCheckpointFormat.Legacy)]
    [InlineData("nested_zip.pt", TorchCheckpointFormat.Zip)]
    [InlineData("nested_legacy.pt", TorchCheckpointFormat.Legacy)]
    public void Loads_every_tensor_and_value_exactly_as_python_wrote_them(string name, TorchCheckpointFormat format)
    {
        using var sd = TorchCheckpoint.Load(files.PathOf(name));
        AssertMatchesExpected(sd, name);
        sd.Format.Should().Be(format);
        sd.Source.Should().Be(files.PathOf(name));
    }

    [Fact]
    public void Stream_overloads_match_the_file_overload_including_non_seekable_streams()
    {
        var bytes = File.ReadAllBytes(files.PathOf("basic_zip.pt"));
        using (var sd = TorchCheckpoint.Load(new MemoryStream(bytes), "mem"))
        {
            AssertMatchesExpected(sd, "basic_zip.pt");
        }

        using (var sd = TorchCheckpoint.Load(new ForwardOnlyStream(File.ReadAllBytes(files.PathOf("basic_legacy.pt")))))
        {
            AssertMatchesExpected(sd, "basic_legacy.pt");
            sd.Source.Should().Be("<stream>");
        }
    }

    [Theory]
    [InlineData("basic_zip.pt")]
    [InlineData("basic_legacy.pt")]
    public void Views_of_one_storage_become_independent_contiguous_tensors(string name)
    {
        using var sd = TorchCheckpoint.Load(files.PathOf(name));
        foreach (var (key, t) in sd)
        {
            t.IsContiguous.Should().BeTrue(key);
            t.RequiresGrad.Should().BeFalse(key);
        }

        var tailBefore = sd["shared_tail"].ToArray<float>();
        var viewBefore = sd["shared_view"].ToArray<float>();
        sd["shared_full"].AsSpan<float>().Fill(42f);
        sd["shared_tail"].ToArray<float>().Should().Equal(tailBefore);
        sd["shared_view"].ToArray<float>().Should().Equal(viewBefore);
        sd["transposed"].Strides.Should().Equal(4, 1);
    }

    [Fact]
    public void State_dict_of_a_real_module_keeps_module_order_and_int64_counters()
    {
        using var sd = TorchCheckpoint.Load(files.PathOf("model_zip.pt"));
        sd.Keys.Should().Equal(
            "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
            "3.weight", "4.weight", "4.bias", "4.running_mean", "4.running_var", "4.num_batches_tracked");
        sd["1.num_batches_tracked"].DType.Should().Be(DType.Int64);
        sd["1.num_batches_tracked"].Shape.Should().BeEmpty();
        sd["1.num_batches_tracked"].ItemLong().Should().Be(1);
        sd.Extras.Should().BeEmpty("the OrderedDict's _metadata attribute is not part of the mapping");
    }

    [Fact]
    public void Training_checkpoint_is_flattened_with_dotted_keys_and_scalars_go_to_extras()
    {
        using var sd = TorchCheckpoint.Load(files.PathOf("nested_zip.pt"));
        sd.ContainsKey("model.0.weight").Should().BeTrue();
        sd.ContainsKey("optimizer.state.0.momentum_buffer").Should().BeTrue();
        sd.Extras["epoch"].Should().Be(3L);
        sd.Extras["lr"].Should().Be(0.25);
        sd.Extras["name"].Should().Be("run1");
        sd.Extras["flag"].Should().Be(true);
        sd.Extras["none"].Should().BeNull();
        sd.Extras["optimizer.param_groups.0.params.2"].Should().Be(2L);
    }

    [Fact]
    public void Parameters_pickled_with_rebuild_parameter_load_as_plain_tensors()
    {
        using var sd = TorchCheckpoint.Load(files.PathOf("nested_zip.pt"));
        sd["param"].Shape.Should().Equal(2, 3);
        sd["param"].RequiresGrad.Should().BeFalse();
    }

    [Fact]
    public void Expanded_views_are_bounded_by_MaxExpandedElements()
    {
        var path = files.PathOf("basic_legacy.pt");
        var act = () => TorchCheckpoint.Load(path, new TorchCheckpointOptions { MaxExpandedElements = 4 });
        var ex = act.Should().Throw<CheckpointFormatException>().Which;
        ex.Key.Should().Be("expanded");
        ex.Message.Should().StartWith(path + ", tensor 'expanded': ");
    }

    [Fact]
    public void Custom_key_separator_is_used_for_nested_keys()
    {
        using var sd = TorchCheckpoint.Load(files.PathOf("nested_legacy.pt"), new TorchCheckpointOptions { KeySeparator = "/" });
        sd.ContainsKey("model/0.weight").Should().BeTrue();
        sd.Extras.Should().ContainKey("optimizer/param_groups/0/lr");
    }

    [Fact]
    public void Loaded_tensors_join_the_callers_dispose_scope_and_intermediates_are_freed()
    {
        Tensor weight;
        using (var scope = Torch.NewDisposeScope())
        {
            var sd = TorchCheckpoint.Load(files.PathOf("basic_zip.pt"));
            scope.Count.Should().Be(sd.Count, "only the returned tensors remain in the scope");
            weight = sd["f32"];
        }

        weight.IsDisposed.Should().BeTrue();
    }

    [Theory]
    [InlineData("evil_zip.pt")]
    [InlineData("evil_legacy.pt")]
    public void Foreign_global_is_refused_without_running_it(string name)
    {
        var path = files.PathOf(name);
        var act = () => TorchCheckpoint.Load(path);
        var ex = act.Should().Throw<UnsupportedCheckpointException>().Which;
        ex.Global.Should().Be("posix.system");
        ex.FilePath.Should().Be(path);
        ex.Message.Should().Contain(path).And.Contain("posix.system");
        File.Exists(files.Marker).Should().BeFalse("loading must never execute pickled code");
    }

    [Fact]
    public void Whole_pickled_module_is_refused_naming_its_class()
    {
        var act = () => TorchCheckpoint.Load(files.PathOf("module_zip.pt"));
        act.Should().Throw<UnsupportedCheckpointException>()
            .Which.Global.Should().StartWith("torch.nn.modules.");
    }

    [Theory]
    [InlineData("basic_zip.pt")]
    [InlineData("basic_legacy.pt")]
    [InlineData("model_legacy.pt")]
    public void Truncated_files_throw_CheckpointFormatException_naming_the_file(string name)
    {
        var bytes = File.ReadAllBytes(files.PathOf(name));
        var path = Path.Combine(files.Dir, "truncated_" + name);
        var cuts = new[] { 0, 1, 2, 4, 11, 30, 64, 100, bytes.Length / 4, bytes.Length / 3, bytes.Length / 2, bytes.Length - 200,
            bytes.Length - 40, bytes.Length - 9, bytes.Length - 1 };
        foreach (var cut in cuts.Where(c => c >= 0 && c < bytes.Length).Distinct())
        {
            File.WriteAllBytes(path, bytes[..cut]);
            var act = () => TorchCheckpoint.Load(path);
            act.Should().Throw<CheckpointFormatException>($"cut at {cut} of {bytes.Length}")
                .Which.Message.Should().StartWith(path);
        }
    }

    [Theory]
    [InlineData("basic_zip.pt")]
    [InlineData("basic_legacy.pt")]
    [InlineData("nested_legacy.pt")]
    public void Flipped_bytes_either_load_or_throw_a_checkpoint_exception(string name)
    {
        var bytes = File.ReadAllBytes(files.PathOf(name));
        var failures = 0;
        var step = Math.Max(1, bytes.Length / 400);
        for (var i = 0; i < bytes.Length; i += step)
        {
            foreach (var mask in new byte[] { 0xff, 0x01, 0x80 })
            {
                var corrupt = (byte[])bytes.Clone();
                corrupt[i] ^= mask;
                try
                {
                    using var sd = TorchCheckpoint.Load(new MemoryStream(corrupt), $"flip@{i}");
                }
                catch (CheckpointException e)
                {
                    e.FilePath.Should().Be($"flip@{i}");
                    failures++;
                }
                catch (Exception e)
                {
                    throw new Xunit.Sdk.XunitException($"byte {i} ^ 0x{mask:x2}: untyped {e.GetType().Name}: {e}");
                }
            }
        }

        failures.Should().BeGreaterThan(0);
    }

    [Fact]
    public void Non_checkpoint_and_empty_inputs_throw_format_exceptions()
    {
        var act1 = () => TorchCheckpoint.Load(new MemoryStream([]), "empty");
        act1.Should().Throw<CheckpointFormatException>().WithMessage("empty: *empty*");
        var act2 = () => TorchCheckpoint.Load(new MemoryStream("hello world"u8.ToArray()), "text");
        act2.Should().Throw<CheckpointFormatException>().WithMessage("text: not a PyTorch checkpoint*");
    }

    [Fact]
    public void Hand_made_pickles_exercise_opcodes_and_cycles_are_rejected()
    {
        // A zip archive without data.pkl is a format error...
        var noPickle = new MemoryStream();
        using (var zip = new System.IO.Compression.ZipArchive(noPickle, System.IO.Compression.ZipArchiveMode.Create, leaveOpen: true))
        {
            zip.CreateEntry("archive/version");
        }

        noPickle.Position = 0;
        var act = () => TorchCheckpoint.Load(noPickle, "nopkl");
        act.Should().Throw<CheckpointFormatException>().WithMessage("*data.pkl*");

        // ...and a list that contains itself (EMPTY_LIST, BINPUT 0, BINGET 0, APPEND, STOP) is rejected, not recursed.
        var cyclic = MakeZip([0x80, 0x02, (byte)']', (byte)'q', 0, (byte)'h', 0, (byte)'a', (byte)'.']);
        var act2 = () => TorchCheckpoint.Load(cyclic, "cyclic");
        act2.Should().Throw<CheckpointFormatException>().WithMessage("*nest deeper*");

        // Protocol-4 opcodes with plain values: {"a": 1.5, "b": [True, None, b"x"]}.
        var pickle = new List<byte> { 0x80, 0x04, 0x95, 0, 0, 0, 0, 0, 0, 0, 0, (byte)'}', 0x94, (byte)'(' };
        pickle.AddRange([0x8c, 1, (byte)'a', 0x94, (byte)'G', .. BitConverter.GetBytes(1.5).Reverse()]);
        pickle.AddRange([0x8c, 1, (byte)'b', 0x94, (byte)']', 0x94, (byte)'(', 0x88, (byte)'N', (byte)'C', 1, (byte)'x', (byte)'e']);
        pickle.AddRange([(byte)'u', (byte)'.']);
        using var sd = TorchCheckpoint.Load(MakeZip([.. pickle]), "values");
        sd.Count.Should().Be(0);
        sd.Extras["a"].Should().Be(1.5);
        sd.Extras["b.0"].Should().Be(true);
        sd.Extras["b.1"].Should().BeNull();
        sd.Extras["b.2"].Should().BeEquivalentTo(new byte[] { (byte)'x' });
    }

    private static MemoryStream MakeZip(byte[] pickle)
    {
        var ms = new MemoryStream();
        using (var zip = new System.IO.Compression.ZipArchive(ms, System.IO.Compression.ZipArchiveMode.Create, leaveOpen: true))
        {
            using var s = zip.CreateEntry("archive/data.pkl").Open();
            s.Write(pickle);
        }

        ms.Position = 0;
        return ms;
    }

    private void AssertMatchesExpected(TorchStateDict sd, string name)
    {
        var expected = files.Expected(name);
        var tensors = expected.GetProperty("tensors").EnumerateArray().ToList();
        sd.Keys.Should().Equal(tensors.Select(t => t[0].GetString()), "keys in file order");
        foreach (var t in tensors)
        {
            var key = t[0].GetString()!;
            CheckpointFiles.AssertTensor(sd[key], t, $"{name}:{key}");
        }

        var extras = expected.GetProperty("extras").EnumerateObject().ToList();
        sd.Extras.Keys.Should().Equal(extras.Select(e => e.Name));
        foreach (var e in extras)
        {
            CheckpointFiles.AssertExtra(sd.Extras[e.Name], e.Value, $"{name}:{e.Name}");
        }
    }
}
